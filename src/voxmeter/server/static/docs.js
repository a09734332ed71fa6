// Renders /docs from /openapi.json with the vendored Swagger UI. A file of its
// own, not an inline script, so the page's Content-Security-Policy can forbid those.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The default validator is a third-party service: the page talks to this server only.
    validatorUrl: null,
  });
});
