"""Thorn for Flask: the extension, SQLAlchemy subscribers and model events, API and CLI."""
