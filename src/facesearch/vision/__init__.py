"""facesearch vision."""
