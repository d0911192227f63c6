// Starts Swagger UI on /docs with this server's OpenAPI document. A file of
// its own rather than an inline script, so the page's Content-Security-Policy
// can forbid inline script.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
