"""The project on disk (.gangline/): its paths, project.toml, item files, set-up and the server file."""
