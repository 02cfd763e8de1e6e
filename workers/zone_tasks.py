"""Celery tasks for zone import and export (thin: zones.imports does the work). Each runs once per
task row (only a PENDING one runs), so a redelivery after a lost worker is harmless."""
from celery import shared_task

from zones import imports


@shared_task(ignore_result=True, acks_late=True)
def import_zone(import_id: str) -> str:
    return imports.run_import(import_id)


@shared_task(ignore_result=True, acks_late=True)
def export_zone(export_id: str) -> str:
    return imports.run_export(export_id)
