"""Errors the services raise; API, admin and commands render them, naming the field."""


class ServiceError(Exception):
    """A request the lab refuses; `errors` maps a field name to the rule it broke."""

    status_code = 400

    def __init__(self, errors, message=None):
        if isinstance(errors, str):
            errors = {"detail": errors}
        self.errors = dict(errors)
        super().__init__(message or "; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class ValidationFailed(ServiceError):
    status_code = 400


class Conflict(ServiceError):
    """The request is valid but the agent's state does not allow it now."""

    status_code = 409


class PermissionRefused(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    """The request names something (a sub-resource) that does not exist where it says."""

    status_code = 404
