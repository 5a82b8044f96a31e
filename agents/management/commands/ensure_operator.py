import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the operator login (a superuser) if missing; print its password once."

    def handle(self, *args, **options):
        username = os.environ.get("LAB_ADMIN_USER", "operator")
        env_password = os.environ.get("LAB_ADMIN_PASSWORD", "")
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is not None:
            if env_password and not user.check_password(env_password):
                user.set_password(env_password)
                user.save(update_fields=["password"])
                self.stdout.write(f"Operator '{username}': password set from LAB_ADMIN_PASSWORD.")
            else:
                hint = settings.VAR_DIR / "operator_password.txt"
                where = f" (password in {hint})" if hint.exists() else ""
                self.stdout.write(f"Operator '{username}' exists{where}.")
            return
        password = env_password or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if not env_password:
            # Kept (owner-readable only) so the login can be found again after the first run.
            path = settings.VAR_DIR / "operator_password.txt"
            path.write_text(password + "\n")
            path.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"Created operator login: {username} / {password}"))
