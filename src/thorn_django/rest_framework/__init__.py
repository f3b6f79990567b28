"""The subscription REST API (Django REST Framework): ``thorn_django.rest_framework.urls``."""
