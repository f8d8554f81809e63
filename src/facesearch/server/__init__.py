"""facesearch server."""
