"""What tuixp records about a trial's world: code, environment, git state, seeds."""

from tuixp.capture.code import function_source, script_source
from tuixp.capture.environment import capture_environment, capture_packages
from tuixp.capture.git import capture_git

__all__ = [
    "function_source",
    "script_source",
    "capture_environment",
    "capture_packages",
    "capture_git",
]
