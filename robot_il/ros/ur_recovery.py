"""Recovery of a UR arm after a protective stop, and its dashboard, as ROS Trigger services.

A protective stop (a collision, a safety limit) stops the arm and its control program; the
controller then refuses motion until the stop is unlocked on its dashboard server (a few
seconds after the stop at the earliest) and the control program runs again. A control program
stopped on its own (the pendant's stop button, a fault) leaves the arm deaf to ``servoJ`` in
the same way. The bridge latches its own e-stop meanwhile. :class:`Recovery` gives a node:

- the dashboard as the UR driver names it (``dashboard_client/unlock_protective_stop``,
  ``.../close_safety_popup``, ``.../play``, ``.../power_on``, ``.../power_off``,
  ``.../brake_release``; std_srvs/Trigger), so a client of the driver works unchanged;
- ``recovery/resume`` (std_srvs/Trigger): a person's go-ahead after a protective stop or a
  stopped program: unlock the stop (while the controller reports one), close the pop-up,
  restart the control program (``ur_rtde`` re-uploads its script), wait until the controller
  reports the stop released and the program running (both lag the dashboard's answers: a status
  read before then would latch the stop again, and a command sent before then is refused while
  the safe-start ramp runs on), then release the latches of both on the bridge's e-stop, so the
  arm restarts with the safe-start ramp (unless an operator's e-stop or an emergency stop is
  latched as well: those stay, and the answer says so);
- ``auto_unlock`` (parameter, **false** by default): do the same by itself ``unlock_delay`` s
  after a protective stop. Off, an unattended run (a model selection) stays stopped until a
  person has looked and called ``recovery/resume``. A stopped program is never restarted
  unattended: a person may have stopped it on the pendant, standing in the cell.

The services have a callback group of their own, so that a resume waiting for the controller
holds up none of the node's other callbacks (``safety/estop`` above all).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger

from robot_il.ros.rtde import Dashboard, RTDEControl, RTDEReceive

DASHBOARD_SERVICES = {
    "unlock_protective_stop": "unlockProtectiveStop",
    "close_safety_popup": "closeSafetyPopup",
    "play": "play",
    "power_on": "powerOn",
    "power_off": "powerOff",
    "brake_release": "brakeRelease",
}
"""Service name under ``dashboard_client/`` -> the ``DashboardClient`` method it calls."""
RESUME_SERVICE = "recovery/resume"
RESUME_TIMEOUT = 5.0
"""s a resume waits for the controller to report the stop released and the program running
(``ur_rtde`` waits as long for its script to start)."""


class Recovery:
    """Dashboard services and recovery for the bridge ``node``.

    The bridge reports what it sees with :meth:`protective_stop` and :meth:`program_stopped`.
    ``release(forget)`` is called (from a service or the auto-unlock thread) once the controller
    reports the stop released and the program running: the bridge releases the latches of both
    there and calls ``forget`` (this record of them) under the lock its servo thread reads the
    controller's status and latches and reports a stop under, and returns why the arm still
    holds (another latch), or None. Forgotten before the release, a stop the servo thread read
    just before would be recorded again (a second log line, a second auto-unlock); after it, a
    program stopped again in between was recorded, then forgotten while latched, and no resume
    could release it.
    """

    def __init__(
        self,
        node: Node,
        dashboard: Dashboard,
        control: RTDEControl,
        receive: RTDEReceive,
        release: Callable[[Callable[[], None]], str | None],
    ) -> None:
        self.node, self.dashboard, self.release = node, dashboard, release
        self.control, self.receive = control, receive
        self.auto_unlock = bool(node.declare_parameter("auto_unlock", False).value)
        self.unlock_delay = float(node.declare_parameter("unlock_delay", 5.0).value)
        self._lock = threading.Lock()
        self._stopped_at: float | None = None
        """Monotonic s of the protective stop to recover from, or None."""
        self._program_stopped = False
        """Whether the control program stopped without a protective stop (to recover from)."""
        group = MutuallyExclusiveCallbackGroup()
        for name, method in DASHBOARD_SERVICES.items():
            node.create_service(
                Trigger,
                f"dashboard_client/{name}",
                self._dashboard_call(name, method),
                callback_group=group,
            )
        node.create_service(Trigger, RESUME_SERVICE, self._on_resume, callback_group=group)

    def _dashboard_call(self, name: str, method: str):
        def call(request, response):
            try:
                getattr(self.dashboard, method)()
            except Exception as error:  # noqa: BLE001 (ur_rtde raises RuntimeError and others)
                response.success, response.message = False, f"{name}: {error}"
            else:
                response.success, response.message = True, f"{name}: done"
            self.node.get_logger().info(f"dashboard_client/{response.message}")
            return response

        return call

    def protective_stop(self) -> None:
        """The arm reported a protective stop (called on every period it lasts)."""
        with self._lock:
            if self._stopped_at is not None:
                return
            self._stopped_at = time.monotonic()
        if self.auto_unlock:
            self.node.get_logger().error(
                f"protective stop: unlocking by itself in {self.unlock_delay:g} s (auto_unlock)"
            )
            threading.Thread(target=self._auto_resume, daemon=True).start()
        else:
            self.node.get_logger().error(
                f"protective stop: the arm holds until a person calls {RESUME_SERVICE} "
                "(auto_unlock is false)"
            )

    def program_stopped(self) -> None:
        """The bridge latched its e-stop for a command the controller refused without a stop:
        its control program is not running (called once per latch)."""
        with self._lock:
            self._program_stopped = True
        self.node.get_logger().error(
            "servoJ refused: the UR control program is not running (stopped on the pendant?); "
            f"the arm holds until a person calls {RESUME_SERVICE} (never restarted unattended)"
        )

    def _auto_resume(self) -> None:
        time.sleep(self.unlock_delay)
        ok, message = self.resume()
        log = self.node.get_logger()
        (log.info if ok else log.error)(f"auto_unlock: {message}")

    def resume(self) -> tuple[bool, str]:
        """Unlock the protective stop, restart the program, wait for the controller to report
        both, and release the hold (see the module docstring)."""
        with self._lock:
            stopped_at, program_stopped = self._stopped_at, self._program_stopped
        if stopped_at is None and not program_stopped:
            return False, "no protective stop or stopped program to recover from"
        if stopped_at is not None:
            wait = stopped_at + self.unlock_delay - time.monotonic()
            if wait > 0:
                return (
                    False,
                    f"too early: the controller unlocks {wait:.1f} s from now at the soonest",
                )
        try:
            if self.receive.isProtectiveStopped():
                self.dashboard.unlockProtectiveStop()
                self.dashboard.closeSafetyPopup()
            if not self.control.reuploadScript():
                return False, "the control program did not restart; still stopped"
            pending = self._await_controller()
        except Exception as error:  # noqa: BLE001
            return False, f"recovery failed: {error}"
        if pending is not None:
            return False, (
                f"still stopped: the controller did not report {pending} within "
                f"{RESUME_TIMEOUT:g} s"
            )
        still_held = self.release(self._forget)
        done = "program restarted"
        if stopped_at is not None:
            done = f"protective stop unlocked, {done}"
        if still_held is not None:
            return True, f"{done}; the arm holds: {still_held}"
        return True, f"{done}; the arm restarts slowly"

    def _forget(self) -> None:
        """Forget the stops recovered from (under the bridge's lock: see the class)."""
        with self._lock:
            self._stopped_at, self._program_stopped = None, False

    def _await_controller(self) -> str | None:
        """Wait (at most ``RESUME_TIMEOUT`` s) until the controller reports no protective
        stop and the control program running; None then, else what it did not report. Its
        status arrives in order: once read released, no later read is the old stop's."""
        deadline = time.monotonic() + RESUME_TIMEOUT
        while True:
            pending = [
                what
                for what, waiting in (
                    ("the protective stop released", self.receive.isProtectiveStopped()),
                    ("the control program running", not self.control.isProgramRunning()),
                )
                if waiting
            ]
            if not pending or time.monotonic() > deadline:
                return " and ".join(pending) or None
            time.sleep(0.01)

    def _on_resume(self, request, response):
        response.success, response.message = self.resume()
        self.node.get_logger().info(f"{RESUME_SERVICE}: {response.message}")
        return response
