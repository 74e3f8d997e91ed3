"""The only code that speaks SQL: compare-and-set writes with their event rows, and the reads."""
