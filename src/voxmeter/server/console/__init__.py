"""The web console: server-rendered pages, a little JavaScript, Chart.js vendored (no CDN)."""
