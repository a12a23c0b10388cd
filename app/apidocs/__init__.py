"""The interactive API docs (``/docs``: Swagger UI, ``/redoc``: ReDoc), served with their scripts from
this package, so they work with no internet."""
