"""Operator console: graduation events (read-only) and paper accounts with their fills.

Rows are scoped by owner (agents.selectors). Transitions are made through the
API or the agent page, which call graduation.services; nothing here edits the ledger.
"""

from django.contrib import admin
from django.db.models import OuterRef, Subquery

from agents.admin.common import OwnedAdminMixin
from graduation.models import GraduationEvent, PaperAccount, PaperFill, PaperTrade

RECENT_FILLS = 50


class OwnedReadOnlyAdmin(OwnedAdminMixin, admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(GraduationEvent)
class GraduationEventAdmin(OwnedReadOnlyAdmin):
    list_display = ["created_at", "agent", "kind", "from_status", "to_status", "automatic", "actor_label", "version"]
    list_filter = ["kind", "to_status", "automatic"]
    list_select_related = ["agent", "version"]
    search_fields = ["agent__name", "reason"]
    date_hierarchy = "created_at"


class _LedgerInline(admin.TabularInline):
    """Read-only rows of an account: whoever may view the account may view them."""

    extra = 0
    max_num = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("graduation.view_paperaccount") or super().has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PaperFillInline(_LedgerInline):
    model = PaperFill
    fields = ["timestamp", "side", "quantity", "price", "fee", "reason", "weight_after"]
    readonly_fields = fields

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        # Only the newest fills: an account with thousands must not render them all.
        recent = PaperFill.objects.filter(account=OuterRef("account")).order_by("-timestamp", "-id").values("pk")
        return qs.filter(pk__in=Subquery(recent[:RECENT_FILLS])).order_by("-timestamp", "-id")


class PaperTradeInline(_LedgerInline):
    model = PaperTrade
    fields = ["side", "entry_time", "exit_time", "entry_price", "exit_price", "pnl", "return_pct", "exit_reason"]
    readonly_fields = fields

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        recent = PaperTrade.objects.filter(account=OuterRef("account")).order_by("-exit_time", "-id").values("pk")
        return qs.filter(pk__in=Subquery(recent[:RECENT_FILLS])).order_by("-exit_time", "-id")


@admin.register(PaperAccount)
class PaperAccountAdmin(OwnedReadOnlyAdmin):
    list_display = ["agent", "role", "live", "version", "opened_at", "closed_at", "equity", "max_drawdown",
                    "bars_processed", "closed_trades", "last_bar_timestamp"]
    list_filter = ["role", "live", ("closed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["agent", "version"]
    search_fields = ["agent__name"]
    inlines = [PaperFillInline, PaperTradeInline]
