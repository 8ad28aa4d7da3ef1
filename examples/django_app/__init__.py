"""The demo app as a Django project: ``gunicorn examples.django_app.wsgi:app``, or
``python examples/django_app/manage.py runserver``."""
