"""Format 1 -> format 2 without re-encoding, and the ``zse gallery`` commands."""

import json

from click.testing import CliRunner

from zse_infer import Retriever
from zse_infer.cli.main import main
from zse_infer.runtime.gallery.format1 import Gallery as Format1
from zse_infer.testing.images import make_photo_files


def test_migrate_keeps_tokens_and_rankings_and_the_cli(tiny_export, tmp_path):
    photos = make_photo_files(tmp_path / "photos", 8)
    ref = Retriever.load(tiny_export)
    ref.index(photos, ids=[str(p) for p in photos], progress=False)
    tokens = ref.encode(photos, "photo")
    old = Format1.create(tmp_path / "old", tokens.shape[1:], ref.gallery.model)
    with old.writing():
        shards = [old.write_shard(tokens[i : i + 3], [str(p) for p in photos[i : i + 3]], [str(p) for p in photos[i : i + 3]])
                  for i in range(0, 8, 3)]
        old.commit(shards)

    cli = CliRunner()
    refused = cli.invoke(main, ["search", str(tiny_export), str(photos[0]), "--gallery", str(tmp_path / "old")])
    assert refused.exit_code == 1 and "zse gallery migrate" in refused.output

    done = cli.invoke(main, ["gallery", "migrate", str(tmp_path / "old"), str(tmp_path / "new")])
    assert done.exit_code == 0, done.output
    assert "8 photos migrated" in done.output
    again = cli.invoke(main, ["gallery", "migrate", str(tmp_path / "old"), str(tmp_path / "new")])  # a re-run adds nothing
    assert again.exit_code == 0 and "8 photos migrated" in again.output

    r = Retriever.load(tiny_export, gallery=tmp_path / "new")
    encoded = []
    run = r.runners.encoder.run
    r.runners.encoder.run = lambda inputs: encoded.append(len(inputs["image"])) or run(inputs)
    for rerank in (0, "all"):
        got, want = r.search(photos[1], k=8, rerank=rerank), ref.search(photos[1], k=8, rerank=rerank)
        assert [h.id for h in got] == [h.id for h in want]
        assert max(abs(a.score - b.score) for a, b in zip(got, want)) < 1e-4
    assert sum(encoded) == 2  # the two sketches (queries) only: no photo was re-encoded

    info = cli.invoke(main, ["gallery", "info", str(tmp_path / "new"), "--json"])
    assert info.exit_code == 0 and json.loads(info.output)["photos"] == 8
    compacted = cli.invoke(main, ["gallery", "compact", str(tmp_path / "new")])
    assert compacted.exit_code == 0 and "8 photos" in compacted.output
    assert json.loads(cli.invoke(main, ["gallery", "info", str(tmp_path / "new"), "--json"]).output)["fragments"] == 1
