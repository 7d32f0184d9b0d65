"""Locations: what each point accepts, its 시도, and which point of another source it is.

`accepts` holds the bin types a point takes as " battery lamp " (space-padded, so a type is
found with LIKE '% battery %' on SQLite and PostgreSQL alike); nearby filters on it through the
area index (band, lng, lat), so the per-type index goes. `merged_into` names the newer point
of another dataset that stands a few metres away with the same type: nearby leaves such rows
out and the kept point lists them as its other sources.

Revision ID: locations_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "locations_0002"
down_revision = "locations_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("bins", sa.Column("city", sa.String(40)))
    op.add_column("bins", sa.Column("accepts", sa.Text))
    op.add_column("bins", sa.Column("merged_into", sa.String(16)))
    op.execute("UPDATE bins SET accepts = ' ' || type || ' '")
    op.drop_index("ix_bins_type_band_lng_lat", "bins")
    op.create_index("ix_bins_merged_into", "bins", ["merged_into"])


def downgrade() -> None:
    op.drop_index("ix_bins_merged_into", "bins")
    op.create_index("ix_bins_type_band_lng_lat", "bins", ["type", "band", "lng", "lat"])
    with op.batch_alter_table("bins") as batch:
        batch.drop_column("merged_into")
        batch.drop_column("accepts")
        batch.drop_column("city")
