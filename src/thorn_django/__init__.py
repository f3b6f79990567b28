"""Thorn for Django: the app, Subscriber model, model events, REST API, admin and checks."""
