"""The Arrow Flight transport (API.md, "Arrow Flight"): ``tickets`` (ticket
bytes -> Selection) and ``server`` (the FlightServerBase over the store)."""
