"""The fake agent CLI shipped in the package: recorded transcripts and scripted scenarios."""
