// The HIT page: tick images by click or keyboard and submit them as JSON. It reads everything
// from the page's own form (checkbox values are the image ids) and writes only textContent.
import { send } from "/static/send.js";

const form = document.getElementById("hit");
if (form) {
  const boxes = Array.from(form.querySelectorAll("input[name=ticked]"));
  const status = document.getElementById("status");
  let sending = false;

  // Tiles in the first row: how far the up and down arrows move in a responsive grid.
  const columns = () => {
    const top = boxes[0].parentElement.offsetTop;
    const wide = boxes.findIndex((box) => box.parentElement.offsetTop !== top);
    return wide < 0 ? boxes.length : wide;
  };

  const submit = async () => {
    if (sending) return;
    sending = true;
    const answer = {
      ticked: boxes.filter((box) => box.checked).map((box) => box.value),
      seconds: performance.now() / 1000,
    };
    sending = await send(form.action, answer, status);
  };

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || !boxes.length) return;
    const at = boxes.indexOf(document.activeElement);
    const steps = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(), ArrowDown: columns() };
    if (event.key in steps) {
      event.preventDefault();
      const to = at < 0 ? 0 : Math.min(Math.max(at + steps[event.key], 0), boxes.length - 1);
      boxes[to].focus();
    } else if (event.key === "Enter" && (at >= 0 || document.activeElement === document.body)) {
      event.preventDefault();  // on a link or a button, Enter keeps its own meaning
      submit();
    }
  });
  // A click leaves the focus on the tile clicked, so the arrow keys go on from there.
  form.addEventListener("change", (event) => event.target.focus());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });

  boxes[0]?.focus();
}
