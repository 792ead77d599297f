// Box tasks (Su, Deng and Fei-Fei, HCOMP 2012): draw one box, or say yes or no about the boxes
// shown. Boxes are held in pixels of the stored image, our convention: integer edges, 0-based,
// the far edges exclusive (0 <= xmin < xmax <= width), which is what the server stores. The
// mouse's position is an edge between pixels: its offset in the displayed image times
// naturalWidth / displayed width, rounded. Boxes are drawn in percent of the image. The script
// reads the task from the form's data attributes and builds the page with DOM calls only.
// Pointer events: a mouse, a pen or a finger draws alike.
import { send } from "/static/send.js";

const form = document.getElementById("box-task");
const GRAB = 8;  // how near a corner or an edge (CSS pixels) the mouse takes hold of it

if (form) {
  const picture = document.getElementById("picture");
  const stage = document.getElementById("stage");
  const status = document.getElementById("status");
  const task = form.dataset.task;
  const width = Number(form.dataset.width);
  const height = Number(form.dataset.height);
  let sending = false;

  const clamp = (value, low, high) => Math.min(Math.max(value, low), high);

  const frame = (box, kind) => {
    const element = document.createElement("div");
    element.className = `box ${kind}`;
    place(element, box);
    stage.append(element);
    return element;
  };

  function place(element, [xmin, ymin, xmax, ymax]) {
    element.style.left = `${(100 * xmin) / width}%`;
    element.style.top = `${(100 * ymin) / height}%`;
    element.style.width = `${(100 * (xmax - xmin)) / width}%`;
    element.style.height = `${(100 * (ymax - ymin)) / height}%`;
  }

  for (const box of JSON.parse(form.dataset.shown)) frame(box, "shown");
  const judged = JSON.parse(form.dataset.judged);
  if (judged) frame(judged, "judged");

  const submit = async (answer) => {
    if (sending) return;
    sending = true;
    sending = await send(form.action, { ...answer, seconds: performance.now() / 1000 }, status);
  };
  const plainKey = (event) => !(event.altKey || event.ctrlKey || event.metaKey);
  const onControl = () => ["BUTTON", "A", "INPUT"].includes(document.activeElement?.tagName);

  if (task === "draw") {
    draw();
  } else {
    document.getElementById("yes").addEventListener("click", () => submit({ answer: true }));
    document.getElementById("no").addEventListener("click", () => submit({ answer: false }));
    document.addEventListener("keydown", (event) => {
      if (!plainKey(event)) return;
      const key = event.key.toLowerCase();
      if (key === "y" || key === "n") {
        event.preventDefault();
        submit({ answer: key === "y" });
      }
    });
  }

  function draw() {
    let box = null;  // [xmin, ymin, xmax, ymax], the worker's box
    let drag = null;  // what the mouse holds: {grip, start, from}
    const drawn = document.createElement("div");
    drawn.className = "box drawn";
    drawn.hidden = true;
    for (const [left, top] of [[0, 0], [50, 0], [100, 0], [0, 50], [100, 50], [0, 100], [50, 100], [100, 100]]) {
      const handle = document.createElement("div");
      handle.className = "handle";
      handle.style.left = `${left}%`;
      handle.style.top = `${top}%`;
      drawn.append(handle);
    }
    stage.append(drawn);

    const show = () => {
      drawn.hidden = box === null;
      if (box) place(drawn, box);
    };

    // The mouse in pixels of the stored image (not rounded), and how many of them a CSS pixel is.
    const at = (event) => {
      const rect = picture.getBoundingClientRect();
      const sx = picture.naturalWidth / rect.width;
      const sy = picture.naturalHeight / rect.height;
      return { x: (event.clientX - rect.left) * sx, y: (event.clientY - rect.top) * sy, reach: GRAB * Math.max(sx, sy) };
    };
    const edgeX = (x) => clamp(Math.round(x), 0, picture.naturalWidth);
    const edgeY = (y) => clamp(Math.round(y), 0, picture.naturalHeight);
    // The box with these corners, or null when it has no area.
    const spanning = (x0, y0, x1, y1) =>
      x0 === x1 || y0 === y1 ? null : [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];

    // What a press at p takes hold of: edges of the box (indices into it), all of it, or nothing.
    const grip = (p) => {
      if (!box) return null;
      const [xmin, ymin, xmax, ymax] = box;
      const withinX = p.x > xmin - p.reach && p.x < xmax + p.reach;
      const withinY = p.y > ymin - p.reach && p.y < ymax + p.reach;
      if (!withinX || !withinY) return null;
      const near = (value, edge) => Math.abs(value - edge) <= p.reach;
      const x = near(p.x, xmin) ? 0 : near(p.x, xmax) ? 2 : null;
      const y = near(p.y, ymin) ? 1 : near(p.y, ymax) ? 3 : null;
      if (x !== null || y !== null) return { x, y };
      return p.x > xmin && p.x < xmax && p.y > ymin && p.y < ymax ? "move" : null;
    };
    const CURSORS = { "0,1": "nwse-resize", "2,3": "nwse-resize", "2,1": "nesw-resize", "0,3": "nesw-resize" };
    const cursor = (hold) => {
      if (hold === "move") return "move";
      if (!hold) return "crosshair";
      if (hold.x !== null && hold.y !== null) return CURSORS[`${hold.x},${hold.y}`];
      return hold.x !== null ? "ew-resize" : "ns-resize";
    };

    stage.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || !picture.complete || !picture.naturalWidth || sending) return;
      event.preventDefault();  // no native image drag, no text selection
      const start = at(event);
      drag = { grip: grip(start) ?? "new", start, from: box };
    });

    window.addEventListener("pointermove", (event) => {
      if (!drag) {
        if (picture.naturalWidth && event.target.closest?.("#stage")) stage.style.cursor = cursor(grip(at(event)));
        return;
      }
      const p = at(event);
      const { grip: hold, start, from } = drag;
      if (hold === "new") {
        box = spanning(edgeX(start.x), edgeY(start.y), edgeX(p.x), edgeY(p.y));
      } else if (hold === "move") {
        const dx = clamp(Math.round(p.x - start.x), -from[0], picture.naturalWidth - from[2]);
        const dy = clamp(Math.round(p.y - start.y), -from[1], picture.naturalHeight - from[3]);
        box = [from[0] + dx, from[1] + dy, from[2] + dx, from[3] + dy];
      } else {
        const edges = [...from];
        if (hold.x !== null) edges[hold.x] = edgeX(p.x);
        if (hold.y !== null) edges[hold.y] = edgeY(p.y);
        box = spanning(...edges) ?? box;  // an edge dragged onto the opposite one: keep the last box
      }
      show();
    });

    const release = () => {
      if (!drag) return;
      drag = null;
      status.textContent = box ? "" : "No box: press at one corner and drag to the opposite one.";
    };
    window.addEventListener("pointerup", release);
    window.addEventListener("pointercancel", release);

    const remove = () => {
      box = null;
      drag = null;
      show();
    };
    const submitBox = () => {
      if (box) submit({ box });
      else status.textContent = "Draw a box first, or answer “Nothing left to box” (N).";
    };
    const nothingLeft = () => {
      if (box) status.textContent = "You drew a box: delete it first (Delete) if nothing is left to box.";
      else submit({ box: null });
    };

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitBox();
    });
    // A mouse click leaves no focus on a button, so that the keys keep their meaning.
    for (const [id, action] of [["delete-box", remove], ["nothing-left", nothingLeft]]) {
      document.getElementById(id).addEventListener("click", (event) => {
        if (event.detail) event.currentTarget.blur();
        action();
      });
    }
    document.addEventListener("keydown", (event) => {
      if (!plainKey(event)) return;
      if (event.key === "Enter" && !onControl()) {
        event.preventDefault();
        submitBox();
      } else if (event.key === "Delete" || (event.key === "Backspace" && !onControl())) {
        event.preventDefault();
        remove();
      } else if (event.key.toLowerCase() === "n") {
        event.preventDefault();
        nothingLeft();
      }
    });
  }
}
