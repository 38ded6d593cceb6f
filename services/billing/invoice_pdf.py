"""An invoice or credit note as a PDF a parent would be glad to print (reportlab, BSD licence):
A4, in French: the commune, the family, number, month, issue and due dates, the lines, totals,
credit applied, amount due and how to pay. Built from the RPC's detail view (no database here)."""

from __future__ import annotations

import base64
import datetime as dt
import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.common import french
from services.common.french import month_label


def euros(cents: int) -> str:
    """1 234,50 € with a plain no-break space between thousands: the PDF's fonts lack the narrow one."""
    return french.euros(cents, thousands=french.NBSP)


def day_label(value: str) -> str:
    return dt.date.fromisoformat(value[:10]).strftime("%d/%m/%Y")


def filename(invoice: dict[str, Any]) -> str:
    prefix = "facture" if invoice["kind"] == "invoice" else "avoir"
    return f"{prefix}-{invoice['number']}.pdf"


def _p(text: Any, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def render(invoice: dict[str, Any]) -> bytes:
    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], ParagraphStyle("small", parent=styles["BodyText"], fontSize=8.5)
    right = ParagraphStyle("right", parent=body, alignment=TA_RIGHT)
    is_invoice = invoice["kind"] == "invoice"
    title = "Facture" if is_invoice else "Avoir"
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"{title} {invoice['number']}",
        author=invoice.get("commune") or "Portail Famille",
    )
    story: list[Any] = []
    header = Table(
        [
            [
                _p(invoice.get("commune") or "Commune", styles["Heading2"]),
                _p(
                    f"{title} n° {invoice['number']}",
                    ParagraphStyle("t", parent=styles["Heading2"], alignment=TA_RIGHT),
                ),
            ],
            [
                _p("Services périscolaires et de loisirs", small),
                _p(f"Émise le {day_label(invoice['issued_at'])}", right),
            ],
        ],
        colWidths=[95 * mm, 79 * mm],
    )
    story += [header, Spacer(1, 8 * mm)]
    family = invoice.get("family") or "Famille"
    story.append(_p(f"À l'attention de : {family}", styles["Heading4"]))
    period = f"Période : {month_label(invoice['month'])}"
    if is_invoice:
        period += f" — à payer avant le {day_label(invoice['due_date'])}"
    story.append(_p(period, body))
    if invoice.get("corrects"):
        story.append(_p(f"Se rapporte à la facture n° {invoice['corrects']}.", body))
    story.append(Spacer(1, 6 * mm))

    rows: list[list[Any]] = [["Enfant", "Activité", "Prix unitaire", "Jours", "Montant"]]
    for line in invoice["lines"]:
        rows.append(
            [
                _p(line["child_first_name"], body),
                _p(line["activity_name"], body),
                euros(line["unit_price_cents"]),
                str(line["quantity"]),
                euros(line["amount_cents"]),
            ]
        )
    rows.append(["", "", "", "Total", euros(invoice["total_cents"])])
    table = Table(rows, colWidths=[40 * mm, 60 * mm, 28 * mm, 16 * mm, 30 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#1f4e79")),
                ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("ROWBACKGROUNDS", (0, 1), (-1, -2), [colors.white, colors.HexColor("#f2f5f9")]),
                ("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
            ]
        )
    )
    story += [table, Spacer(1, 6 * mm)]

    if is_invoice:
        totals = [["Total de la facture", euros(invoice["total_cents"])]]
        if invoice["credit_applied_cents"]:
            totals.append(["Crédit du compte famille déduit", "-" + euros(invoice["credit_applied_cents"])])
        paid_online = invoice["paid_cents"] - invoice["credit_applied_cents"]
        if paid_online > 0:
            totals.append(["Déjà payé", "-" + euros(paid_online)])
        totals.append(["Reste à payer", euros(max(0, invoice["total_cents"] - invoice["paid_cents"]))])
    else:
        totals = [["Montant porté au crédit de votre compte", euros(invoice["total_cents"])]]
    summary = Table(totals, colWidths=[120 * mm, 54 * mm])
    summary.setStyle(
        TableStyle(
            [
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                ("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black),
            ]
        )
    )
    story += [summary, Spacer(1, 8 * mm)]
    story.append(_p("Comment payer" if is_invoice else "Et ensuite ?", styles["Heading4"]))
    story.append(_p(invoice["payment_instructions"], body))
    story.append(Spacer(1, 4 * mm))
    story.append(_p(f"Référence à rappeler : {invoice['number']}", small))
    doc.build(story)
    return out.getvalue()


def as_rpc(invoice: dict[str, Any]) -> dict[str, str]:
    return {
        "filename": filename(invoice),
        "content_base64": base64.b64encode(render(invoice)).decode("ascii"),
    }
