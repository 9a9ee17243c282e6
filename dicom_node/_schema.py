"""SQLite schema of the storage index (``<root>/index.sqlite3``).

Paths are stored relative to the storage root so the folder can be moved as a whole.
Column names avoid SQL keywords (``ROWS`` is one), hence ``image_rows``/``image_columns``.
``derived`` and ``pushes`` rows are keyed by plan id without a foreign key: a plan's derived
objects are saved before its JSON, which lists their UIDs.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    sop_class_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    transfer_syntax TEXT NOT NULL,
    path TEXT NOT NULL,
    received_at REAL NOT NULL,
    modality TEXT,
    image_rows INTEGER,
    image_columns INTEGER,
    pixel_spacing_row_mm REAL,
    pixel_spacing_column_mm REAL,
    position_x_mm REAL,
    position_y_mm REAL,
    position_z_mm REAL,
    orientation_json TEXT,
    patient_position TEXT,
    slice_thickness_mm REAL,
    instance_number INTEGER
);
CREATE INDEX IF NOT EXISTS instances_by_series ON instances (series_uid);

CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    modality TEXT,
    first_received REAL NOT NULL,
    last_received REAL NOT NULL,
    instance_count INTEGER NOT NULL,
    state_override TEXT,
    invalid_reason TEXT
);

CREATE TABLE IF NOT EXISTS plans (
    plan_id TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL,
    plan_json TEXT NOT NULL,
    saved_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS plans_by_series ON plans (series_uid);

CREATE TABLE IF NOT EXISTS derived (
    sop_instance_uid TEXT PRIMARY KEY,
    plan_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    kind TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    path TEXT NOT NULL,
    saved_at REAL NOT NULL,
    UNIQUE (plan_id, ordinal)
);

CREATE TABLE IF NOT EXISTS pushes (
    push_id INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    destination TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    pushed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pushes_by_plan ON pushes (plan_id);
"""
