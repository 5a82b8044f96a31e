from django.apps import AppConfig


class GraduationConfig(AppConfig):
    name = "graduation"
    default_auto_field = "django.db.models.BigAutoField"
