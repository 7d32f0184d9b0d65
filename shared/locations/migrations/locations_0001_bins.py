"""Locations: imported bin datasets, bins with their area index, Kakao geocoding answers.

The area index is plain B-tree on (band, lng, lat) and (type, band, lng, lat), `band` being
the 0.01-degree latitude band: it serves nearby on SQLite and on PostgreSQL without PostGIS or
earthdistance (neither is installed where this runs).

Revision ID: locations_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "locations_0001"
down_revision = None
branch_labels = ("locations",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bin_datasets",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("publisher", sa.Text),
        sa.Column("date", sa.String(10)),
        sa.Column("attribution", sa.Text),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("geocoder", sa.String(20)),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "bins",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column(
            "dataset",
            sa.String(200),
            sa.ForeignKey(
                "bin_datasets.key", ondelete="CASCADE", name="fk_bins_dataset_bin_datasets"
            ),
            nullable=False,
        ),
        sa.Column("source_id", sa.Text, nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("district", sa.String(40)),
        sa.Column("location_detail", sa.Text),
        sa.Column("lat", sa.Double),
        sa.Column("lng", sa.Double),
        sa.Column("band", sa.Integer),
        sa.Column("opening_hours", sa.JSON),
        sa.Column("accepted_items", sa.JSON),
        sa.Column("phone", sa.Text),
        sa.Column("source_date", sa.String(10)),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("dataset", "source_id", name="uq_bins_dataset_source_id"),
    )
    op.create_index("ix_bins_band_lng_lat", "bins", ["band", "lng", "lat"])
    op.create_index("ix_bins_type_band_lng_lat", "bins", ["type", "band", "lng", "lat"])
    op.create_table(
        "geocodes",
        sa.Column("query", sa.Text, primary_key=True),
        sa.Column("found", sa.Boolean, nullable=False),
        sa.Column("lat", sa.Double),
        sa.Column("lng", sa.Double),
        sa.Column("address", sa.Text),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("geocodes")
    op.drop_index("ix_bins_type_band_lng_lat", "bins")
    op.drop_index("ix_bins_band_lng_lat", "bins")
    op.drop_table("bins")
    op.drop_table("bin_datasets")
