"""An aiohttp app served from a thread of this process: the image host and the labelling page.

A subclass says what to serve in ``make_app()`` and where in ``sites(runner)``; ``with``
starts it on its own event loop and thread and stops it, answers in flight cancelled.
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

SHUTDOWN_GRACE = 0.5  # seconds open answers get when the server stops


class BackgroundServer:
    host: str = "127.0.0.1"
    port: int = 0
    name: str = "server"

    def make_app(self) -> web.Application:
        raise NotImplementedError

    async def sites(self, runner: web.AppRunner) -> int:
        """Start the sites on ``runner``; return the port."""
        await web.TCPSite(runner, self.host, self.port).start()
        return runner.addresses[0][1]

    def __enter__(self):
        self._runner: web.AppRunner | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=self.name, daemon=True)
        self._thread.start()
        try:
            self.port = self._call(self._start())
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._close()

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _start(self) -> int:
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
        await self._runner.setup()
        return await self.sites(self._runner)

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # Answers still running (a robots.txt that stalls for an hour) end with the server.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_default_executor()

    def _close(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
