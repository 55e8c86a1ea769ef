"""The playable browser client served at ``/play/``: a page, its static files, two small views."""
