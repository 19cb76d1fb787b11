"""The ground floor every other package may stand on: the one settings object and the one
place that names topics. Imports nothing of the project."""
