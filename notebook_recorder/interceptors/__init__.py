"""Per-library hooks. Each turns calls into requests for the Recorder and knows nothing of files."""
