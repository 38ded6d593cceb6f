"""The identity provider's few HTML pages (login, logout, errors): Jinja2 templates under
templates/oidc/, French first, English when `ui_locales` or Accept-Language prefer it. No
JavaScript: every page works as plain HTML forms."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from services.identity.oidc_http import HttpResponse, html_response

LOCALES = ("fr", "en")
TEMPLATES = Path(__file__).with_name("templates") / "oidc"

TEXT: dict[str, dict[str, str]] = {
    "fr": {
        "site": "Portail famille",
        "login_title": "Connexion",
        "login_intro": "Connectez-vous à votre espace famille.",
        "email": "Adresse e-mail",
        "password": "Mot de passe",
        "submit": "Se connecter",
        "error_prefix": "Erreur",
        "missing_email": "Saisissez votre adresse e-mail.",
        "missing_password": "Saisissez votre mot de passe.",
        "form_expired": "Le formulaire a expiré. Veuillez saisir à nouveau vos identifiants.",
        "INVALID_CREDENTIALS": "Adresse e-mail ou mot de passe incorrect.",
        "EMAIL_NOT_VERIFIED": "Veuillez d'abord confirmer votre adresse e-mail "
        "à l'aide du lien reçu par e-mail.",
        "TOO_MANY_ATTEMPTS": "Trop de tentatives. Réessayez dans {seconds} secondes.",
        "error_title": "Connexion impossible",
        "error_intro": "La demande de connexion transmise par l'application n'est pas valide. "
        "Revenez à l'application et réessayez.",
        "logout_error_intro": "La demande de déconnexion transmise par l'application n'est pas valide.",
        "error_detail": "Détail technique",
        "back_home": "Retour au portail",
        "logout_title": "Déconnexion",
        "logout_question": "Voulez-vous vous déconnecter de votre espace famille sur cet appareil ?",
        "logout_submit": "Se déconnecter",
        "logged_out_title": "Déconnexion effectuée",
        "logged_out_text": "Votre session a été fermée sur cet appareil.",
    },
    "en": {
        "site": "Family portal",
        "login_title": "Sign in",
        "login_intro": "Sign in to your family account.",
        "email": "Email address",
        "password": "Password",
        "submit": "Sign in",
        "error_prefix": "Error",
        "missing_email": "Enter your email address.",
        "missing_password": "Enter your password.",
        "form_expired": "The form has expired. Please enter your credentials again.",
        "INVALID_CREDENTIALS": "Incorrect email address or password.",
        "EMAIL_NOT_VERIFIED": "Please confirm your email address first, with the link we emailed you.",
        "TOO_MANY_ATTEMPTS": "Too many attempts. Try again in {seconds} seconds.",
        "error_title": "Sign-in failed",
        "error_intro": "The sign-in request sent by the application is not valid. "
        "Go back to the application and try again.",
        "logout_error_intro": "The sign-out request sent by the application is not valid.",
        "error_detail": "Technical detail",
        "back_home": "Back to the portal",
        "logout_title": "Sign out",
        "logout_question": "Do you want to sign out of your family account on this device?",
        "logout_submit": "Sign out",
        "logged_out_title": "You are signed out",
        "logged_out_text": "Your session on this device has been closed.",
    },
}


def choose_locale(ui_locales: str | None, accept_language: str | None) -> str:
    """`ui_locales` (space-separated, in order of preference) first, then Accept-Language; French
    by default."""
    for tag in (ui_locales or "").split():
        primary = tag.split("-")[0].lower()
        if primary in LOCALES:
            return primary
    if accept_language:
        accept = parse_accept_header(accept_language, LanguageAccept)
        return accept.best_match(LOCALES, default="fr") or "fr"
    return "fr"


def text(locale: str) -> dict[str, str]:
    return TEXT.get(locale, TEXT["fr"])


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, locale: str, **context: Any) -> str:
    return _environment().get_template(template).render(lang=locale, t=text(locale), **context)


def login_page(
    status: int,
    locale: str,
    *,
    action: str,
    csrf_token: str,
    authorize: str,
    email: str = "",
    error: str | None = None,
) -> HttpResponse:
    body = render(
        "login.html",
        locale,
        action=action,
        csrf_token=csrf_token,
        authorize=authorize,
        email=email,
        error=error,
    )
    return html_response(status, body)


def error_page(status: int, locale: str, *, code: str, home: str, logout: bool = False) -> HttpResponse:
    body = render("error.html", locale, code=code, home=home, logout=logout)
    return html_response(status, body)


def logout_page(locale: str, *, action: str, csrf_token: str, params: dict[str, str]) -> HttpResponse:
    return html_response(
        200, render("logout.html", locale, action=action, csrf_token=csrf_token, params=params)
    )


def logged_out_page(locale: str, *, home: str) -> HttpResponse:
    return html_response(200, render("logged_out.html", locale, home=home))
