"""notebook-recorder: record OpenAI SDK calls and tool calls once, replay them exactly, offline."""

__version__ = "0.1.0"
