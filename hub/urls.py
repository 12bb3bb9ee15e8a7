from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from hub import views
from hub.forms import EmailAuthenticationForm

account_patterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(authentication_form=EmailAuthenticationForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.SignupView.as_view(), name="signup"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"
    ),
    path("password/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]

webhook_patterns = (
    [
        path("", views.WebhookListView.as_view(), name="list"),
        path("<uuid:webhook_id>/", views.WebhookDetailView.as_view(), name="detail"),
        path("<uuid:webhook_id>/rotate-secret/", views.WebhookRotateSecretView.as_view(), name="rotate-secret"),
        path("<uuid:webhook_id>/delete/", views.WebhookDeleteView.as_view(), name="delete"),
        path("<uuid:webhook_id>/test/", views.WebhookTestView.as_view(), name="test"),
        path(
            "<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver/",
            views.WebhookRedeliverView.as_view(),
            name="redeliver",
        ),
    ],
    "webhooks",
)

notification_patterns = (
    [
        path("", views.NotificationListView.as_view(), name="list"),
        path("<uuid:notification_id>/read/", views.NotificationReadView.as_view(), name="read"),
        path("read-all/", views.NotificationReadAllView.as_view(), name="read-all"),
    ],
    "notifications",
)

settings_patterns = [
    path("", views.SettingsView.as_view(), name="settings"),
    path("members/", views.MembersView.as_view(), name="members"),
    path("members/<uuid:user_id>/role/", views.MemberRoleView.as_view(), name="member-role"),
    path("members/<uuid:user_id>/remove/", views.MemberRemoveView.as_view(), name="member-remove"),
    path("invitations/<uuid:invitation_id>/revoke/", views.InvitationRevokeView.as_view(), name="invitation-revoke"),
    path("tokens/", views.TokensView.as_view(), name="tokens"),
    path("tokens/<uuid:token_id>/revoke/", views.TokenRevokeView.as_view(), name="token-revoke"),
    path("audit/", views.AuditLogView.as_view(), name="audit-log"),
    path("audit/export.csv", views.AuditExportView.as_view(), name="audit-export"),
    path("webhooks/", include(webhook_patterns)),
]

api_v1_patterns = [
    path("", include("hub.api.urls")),
    path("", include("fabric.api.urls")),
    path("", include("marketplace.api.urls")),
    path("security/", include("security.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("accounts/", include(account_patterns)),
    path("orgs/new/", views.OrganizationCreateView.as_view(), name="org-create"),
    path("orgs/switch/", views.OrganizationSwitchView.as_view(), name="org-switch"),
    path("invitations/<str:token>/", views.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("settings/", include(settings_patterns)),
    path("notifications/", include(notification_patterns)),
    path("fabric/", include("fabric.urls")),
    path("marketplace/", include("marketplace.urls")),
    path("provider/", include("marketplace.console_urls")),
    path("security/", include("security.urls")),
    path("api/v1/", include(api_v1_patterns)),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/(?P<unmatched>.*)$", views.api_not_found, name="api-not-found"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
]

handler403 = "hub.views.permission_denied"
handler404 = "hub.views.page_not_found"
handler500 = "hub.views.server_error"
