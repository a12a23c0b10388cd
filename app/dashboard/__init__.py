"""The server-rendered dashboard: a browser signs in with an API key and sees its tenant's jobs."""
