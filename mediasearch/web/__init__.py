"""The search page: static HTML, CSS and a little plain JavaScript, served from the package."""
