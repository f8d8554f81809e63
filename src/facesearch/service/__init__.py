"""facesearch service."""
