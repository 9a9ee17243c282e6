"""Service settings: environment variables with the CTPLAN_ prefix, built once at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dicom_node.pacs import PushOptions
from dicom_node.scu import Destination, parse_destinations
from planner.rules import (
    DEFAULT_TIERS,
    DoseTier,
    DosingRules,
    PlanningRules,
    SegmentationRules,
    TrajectoryRules,
)


class Settings(BaseSettings):
    """Every setting of the service; the README documents each one."""

    model_config = SettingsConfigDict(env_prefix="CTPLAN_", env_file=".env", extra="ignore")

    host: str = Field("127.0.0.1", description="Bind address of the DICOM and HTTP servers")
    dicom_port: int = Field(11112, ge=1, le=65535, description="DICOM SCP port")
    http_port: int = Field(8000, ge=1, le=65535, description="HTTP API port")
    ae_title: str = Field("CTPLAN", min_length=1, max_length=16, description="SCP AE title")
    storage_dir: Path = Field(Path("data"), description="Received series, plans, SQLite index")
    stable_seconds: float = Field(
        5.0, gt=0, description="Quiet time after the last instance before a series is complete"
    )
    log_level: str = Field("INFO", description="Python logging level")

    # PACS the plans' derived objects (SC, SEG, SR) are sent to.
    pacs: str = Field(
        "", description="Comma-separated AE@host:port destinations; empty: no PACS configured"
    )
    auto_push: bool = Field(False, description="Send every new plan to the PACS automatically")
    push_retries: int = Field(3, ge=0, le=10, description="Further attempts after a failed send")
    push_backoff_seconds: float = Field(
        1.0, ge=0, le=60, description="Wait before the first retry, doubled for each further one"
    )
    push_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="Connection and answer timeout of a send"
    )

    # Clinical rules (CLINICAL.md); defaults are the documented ones.
    dose_tier_upper_ml: tuple[float, float, float] = Field(
        (10.0, 20.0, 50.0), description="Upper bounds of the first three anaesthetic tiers (mL)"
    )
    dose_tier_anaesthetic_ml: tuple[float, float, float, float] = Field(
        (1.5, 5.0, 10.0, 15.0), description="Anaesthetic mixture per tier (mL)"
    )
    near_spine_mm: float = Field(30.0, ge=0, description="Lesion-to-spine distance for cortivazol")
    validated_pixel_mm: float = Field(
        0.8, gt=0, description="Coarsest pixel on which automatic L and W are validated (mm)"
    )
    validated_slice_mm: float = Field(
        1.0, gt=0, description="Coarsest slice spacing on which automatic L and W are validated"
    )
    outline_error_mm: float = Field(
        1.0,
        ge=0,
        description="Error of the outline on an automatic L or W (mm), added to one voxel "
        "for the volume interval",
    )
    max_unseen_edge_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of the outline on no visible edge above which the plan warns",
    )
    needle_lengths_mm: tuple[float, ...] = Field(
        (90.0, 150.0, 200.0), description="Available 22 G needle lengths (mm)"
    )
    clearance_margin_mm: float = Field(
        3.0, ge=0, description="Clearance kept beyond the needle radius from forbidden structures"
    )
    max_craniocaudal_angle_deg: float = Field(
        35.0, ge=0, le=80, description="Steepest craniocaudal needle tilt searched"
    )
    max_angle_to_skin_normal_deg: float = Field(
        60.0, gt=0, le=89, description="Most oblique skin entry allowed"
    )

    @field_validator("dose_tier_upper_ml")
    @classmethod
    def _increasing(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not v[0] < v[1] < v[2]:
            raise ValueError("tier bounds must increase, e.g. 10,20,50")
        return v

    @field_validator("pacs")
    @classmethod
    def _destinations(cls, v: str) -> str:
        parse_destinations(v)  # ValueError names the bad destination
        return v

    @model_validator(mode="after")
    def _push_somewhere(self) -> Settings:
        if self.auto_push and not self.pacs_destinations():
            raise ValueError("CTPLAN_AUTO_PUSH is true but CTPLAN_PACS names no destination")
        return self

    def pacs_destinations(self) -> list[Destination]:
        return parse_destinations(self.pacs)

    def push_options(self) -> PushOptions:
        return PushOptions(
            ae_title=self.ae_title,
            retries=self.push_retries,
            backoff_s=self.push_backoff_seconds,
            timeout_s=self.push_timeout_seconds,
        )

    def planning_rules(self) -> PlanningRules:
        tiers: tuple[DoseTier, ...] = tuple(
            DoseTier(upper, default.upper_inclusive, ml)
            for upper, ml, default in zip(
                (*self.dose_tier_upper_ml, None),
                self.dose_tier_anaesthetic_ml,
                DEFAULT_TIERS,
                strict=True,
            )
        )
        return PlanningRules(
            dosing=DosingRules(
                tiers=tiers,
                near_spine_mm=self.near_spine_mm,
            ),
            segmentation=SegmentationRules(
                validated_pixel_mm=self.validated_pixel_mm,
                validated_slice_mm=self.validated_slice_mm,
                max_unseen_edge_fraction=self.max_unseen_edge_fraction,
                outline_error_mm=self.outline_error_mm,
            ),
            trajectory=TrajectoryRules(
                needle_lengths_mm=tuple(sorted(self.needle_lengths_mm)),
                clearance_margin_mm=self.clearance_margin_mm,
                max_craniocaudal_angle_deg=self.max_craniocaudal_angle_deg,
                max_angle_to_skin_normal_deg=self.max_angle_to_skin_normal_deg,
            ),
        )
