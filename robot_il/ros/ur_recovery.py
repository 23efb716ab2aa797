"""Recovery of a UR arm after a protective stop, and its dashboard, as ROS Trigger services.

A protective stop (a collision, a safety limit) stops the arm; the controller then refuses
motion until the stop is unlocked on its dashboard server (a few seconds after the stop at the
earliest) and the control program runs again. The bridge latches its own e-stop meanwhile.
:class:`Recovery` gives a node:

- the dashboard as the UR driver names it (``dashboard_client/unlock_protective_stop``,
  ``.../close_safety_popup``, ``.../play``, ``.../power_on``, ``.../power_off``,
  ``.../brake_release``; std_srvs/Trigger), so a client of the driver works unchanged;
- ``recovery/resume`` (std_srvs/Trigger): a person's go-ahead after a protective stop: unlock
  it, close the pop-up, restart the control program (``ur_rtde`` re-uploads its script) and
  release the protective stop's latch of the bridge's e-stop, so the arm restarts with the
  safe-start ramp (unless an operator's e-stop or an emergency stop is latched as well: those
  stay, and the answer says so);
- ``auto_unlock`` (parameter, **false** by default): do the same by itself ``unlock_delay`` s
  after a protective stop. Off, an unattended run (a model selection) stays stopped until a
  person has looked and called ``recovery/resume``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rclpy.node import Node
from std_srvs.srv import Trigger

from robot_il.ros.rtde import Dashboard, RTDEControl

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


class Recovery:
    """Dashboard services and protective-stop recovery for the bridge ``node``.

    ``release`` is called (from a service or the auto-unlock thread) once the stop is unlocked
    and the program runs again: the bridge releases the protective stop's latch there, and
    returns why the arm still holds (another latch), or None.
    """

    def __init__(
        self,
        node: Node,
        dashboard: Dashboard,
        control: RTDEControl,
        release: Callable[[], str | None],
    ) -> None:
        self.node, self.dashboard, self.control, self.release = node, dashboard, control, release
        self.auto_unlock = bool(node.declare_parameter("auto_unlock", False).value)
        self.unlock_delay = float(node.declare_parameter("unlock_delay", 5.0).value)
        self._lock = threading.Lock()
        self._stopped_at: float | None = None
        for name, method in DASHBOARD_SERVICES.items():
            node.create_service(
                Trigger, f"dashboard_client/{name}", self._dashboard_call(name, method)
            )
        node.create_service(Trigger, RESUME_SERVICE, self._on_resume)

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

    def _auto_resume(self) -> None:
        time.sleep(self.unlock_delay)
        ok, message = self.resume()
        log = self.node.get_logger()
        (log.info if ok else log.error)(f"auto_unlock: {message}")

    def resume(self) -> tuple[bool, str]:
        """Unlock the protective stop, restart the program and release the hold."""
        with self._lock:
            if self._stopped_at is None:
                return False, "no protective stop to recover from"
            wait = self._stopped_at + self.unlock_delay - time.monotonic()
        if wait > 0:
            return False, f"too early: the controller unlocks {wait:.1f} s from now at the soonest"
        try:
            self.dashboard.unlockProtectiveStop()
            self.dashboard.closeSafetyPopup()
            if not self.control.reuploadScript():
                return False, "the control program did not restart; still stopped"
        except Exception as error:  # noqa: BLE001
            return False, f"recovery failed: {error}"
        with self._lock:
            self._stopped_at = None
        still_held = self.release()
        if still_held is not None:
            return True, f"protective stop unlocked, program restarted; the arm holds: {still_held}"
        return True, "protective stop unlocked, program restarted; the arm restarts slowly"

    def _on_resume(self, request, response):
        response.success, response.message = self.resume()
        self.node.get_logger().info(f"{RESUME_SERVICE}: {response.message}")
        return response
