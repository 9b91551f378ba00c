/* The API docs page: Swagger UI over the app's OpenAPI description (data-spec-url).
   Requests made with "Try it out" carry the session's CSRF token, so session users can
   call changing operations too (bearer callers don't need it). */
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") {
    return;
  }
  var csrfToken = root.getAttribute("data-csrf-token");
  window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: false,
    requestInterceptor: function (request) {
      var sameSite = request.url.indexOf("/") === 0 || request.url.indexOf(window.location.origin + "/") === 0;
      if (sameSite && csrfToken) {
        request.headers["X-CSRFToken"] = csrfToken;
      }
      return request;
    }
  });
}());
