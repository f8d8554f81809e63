"""facesearch store."""
