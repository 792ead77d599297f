// Posting one answer as JSON, for every kind of task page. The status line says what became
// of it: saved (the next task loads), not counted (409...: a link to the next task), or NOT
// saved (503, 507, no connection: the answer stays on the page for another try). True once
// saved: the page is then on its way to the next task and must not send again.
export async function send(action, answer, status) {
  status.textContent = "Sending…";
  try {
    const response = await fetch(action, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(answer),
      credentials: "same-origin",
    });
    if (response.ok) {
      location.assign("/hit");
      return true;
    }
    status.textContent = await response.text();
    if (response.status < 500) {
      const next = document.createElement("a");
      next.href = "/hit";
      next.textContent = "Go to the next HIT";
      status.append(" ", next);
    }
  } catch (error) {
    status.textContent = `Could not reach the server (${error.message}): try again.`;
  }
  return false;
}
