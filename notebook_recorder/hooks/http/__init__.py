"""The HTTP-library hooks: every request that no typed SDK hook handles, recorded and replayed at
the HTTP library it goes through (vcrpy's ``stubs/``: one small module per library).

- ``httpx`` and ``httpx2``: the transport classes (``_httpx``);
- ``requests``: ``HTTPAdapter.send``;
- ``aiohttp``: ``ClientSession._request``.

They share the exchange (``_exchange``) and the wire format (``_wire``: FORMAT.md's "HTTP-level
recordings"), and go through the core's engine as the SDK hooks do. A request made inside a typed
SDK hook's call or a recorded tool is left alone (``.._above``): it is recorded once, above. They
are installed with the optional SDKs (``..sdk``: at once when the library is loaded, else right
after its import). May import ``notebook_recorder.core`` and the hooks' shared modules; never a
front end.
"""
