"""``notebook-recorder serve``, ``nr.serve()`` and ``%apirec serve``: a loopback HTTP endpoint that
records and replays the API calls of other processes (front-end layer).

- :mod:`._server`: the ASGI application (starlette on uvicorn), the relay of live streams, and
  ``serve`` (a background thread) / ``run_forever`` (the command line);
- :mod:`._wire`: an HTTP request as the request the SDK hook describes, an answer as the response
  it records (through the SDK's own classes), and a recording back as the bytes the API sent;
- :mod:`._upstream`: forwarding to the upstream over asyncio, its answers parsed by httptools.

Nothing here is imported by ``import notebook_recorder``; starlette and uvicorn load when a
server starts.
"""
