"""Job streams: the hub that fans read-model changes out to WebSocket and SSE connections."""
