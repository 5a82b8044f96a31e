"""The email transport: Django's email backend, plain text with the webhook's content."""

import smtplib

from django.conf import settings
from django.core.mail import get_connection, send_mail

from alerts.transports.base import SendResult, Transport, render_subject, render_text

DEFAULT_EMAIL_TIMEOUT = 10


class EmailTransport(Transport):
    kind = "email"

    def send(self, channel, payload, *, delivery_id):
        timeout = getattr(settings, "EMAIL_TIMEOUT", None) or DEFAULT_EMAIL_TIMEOUT
        try:
            connection = get_connection(fail_silently=False, timeout=timeout)
            send_mail(
                render_subject(payload),
                render_text(payload),
                settings.DEFAULT_FROM_EMAIL,
                [channel.target],
                connection=connection,
            )
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            # The server refused the address: sending again will not change its mind.
            return SendResult.permanent(f"mail server refused the message: {type(exc).__name__}")
        except smtplib.SMTPResponseException as exc:
            code = exc.smtp_code
            text = f"mail server answered {code}"
            return SendResult.permanent(text) if 500 <= code < 600 else SendResult.retry(text)
        except TimeoutError:
            return SendResult.retry(f"mail server timed out after {timeout}s")
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult.retry(f"mail server unreachable: {type(exc).__name__}")
        return SendResult.success()
