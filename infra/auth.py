"""The Cognito user pool that owns the users and the public app client the chat clients sign in with.

Sign-in is SRP (``USER_SRP_AUTH``): the page (amazon-cognito-identity-js) and the terminal client (pycognito) prove
the password without sending it, and the app client allows no ``USER_PASSWORD_AUTH``.
Tokens are short-lived (a stage's ``access_token_validity_minutes``, 15 by default; the clients renew them with the
refresh token, which lasts ``refresh_token_validity_days``, 7 by default) and revocable: the page's Sign out revokes
its refresh token (``RevokeToken``), and the authorizer and the routes ask Cognito whether a token was revoked
(``assistant.revocation``). A stage with ``threat_protection`` (``prod``) gets Cognito's threat protection in
enforced mode, which needs the Plus feature plan (docs/deploy.md has what it costs).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from infra.retention import removal_policy
from infra.stage import StageConfig


class UserDirectory(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=f"gpt-assistant-{stage.name}",
            sign_in_aliases=cognito.SignInAliases(email=True, username=False),
            sign_in_case_sensitive=False,
            self_sign_up_enabled=stage.allow_self_sign_up,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=cdk.Duration.days(3),
            ),
            # Users may add a TOTP app; SMS would need an SNS origination setup per account.
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            deletion_protection=stage.retain_data,
            removal_policy=removal_policy(stage),
            # Threat protection (adaptive authentication: risky sign-ins blocked or challenged; compromised-credential
            # detection) needs the Plus plan; without it the pool keeps Cognito's default plan (Essentials).
            feature_plan=cognito.FeaturePlan.PLUS if stage.threat_protection else None,
            standard_threat_protection_mode=(
                cognito.StandardThreatProtectionMode.FULL_FUNCTION if stage.threat_protection else None
            ),
        )
        self.client = self.user_pool.add_client(
            "ChatClient",
            user_pool_client_name=f"gpt-assistant-{stage.name}-chat",
            # A public client: scripts and browsers cannot keep a client secret.
            generate_secret=False,
            # SRP only: USER_PASSWORD_AUTH would send the password itself to Cognito, and nothing signs in that way
            # (the admin flows stay off too: the admin scripts set passwords, they never sign in). CDK
            # adds ALLOW_REFRESH_TOKEN_AUTH, which the clients renew their tokens with.
            auth_flows=cognito.AuthFlow(user_srp=True),
            prevent_user_existence_errors=True,
            access_token_validity=cdk.Duration.minutes(stage.access_token_validity_minutes),
            id_token_validity=cdk.Duration.minutes(stage.access_token_validity_minutes),
            refresh_token_validity=cdk.Duration.days(stage.refresh_token_validity_days),
            # RevokeToken (the page's Sign out) works only with revocation on; it is also what makes the access
            # tokens issued from a revoked refresh token fail GetUser (assistant.revocation).
            enable_token_revocation=True,
            # Clients sign in with the API (SRP), not a hosted page: CDK's default OAuth flows and its
            # https://example.com callback would only be an unused redirect target. A stage that wants the hosted
            # sign-in names its callback URLs (and then needs a user pool domain).
            disable_o_auth=not stage.hosted_sign_in_callback_urls,
            o_auth=(
                cognito.OAuthSettings(
                    flows=cognito.OAuthFlows(authorization_code_grant=True),
                    scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                    callback_urls=list(stage.hosted_sign_in_callback_urls),
                    logout_urls=list(stage.hosted_sign_in_callback_urls),
                )
                if stage.hosted_sign_in_callback_urls
                else None
            ),
        )
