"""The ``facesearch`` command line."""
