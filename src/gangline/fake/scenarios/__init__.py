"""Scenarios for the fake agent CLI (``--scenario``), shipped for the demo: one per role.

``coder.json`` writes ``notes/<item slug>.md``, shows it and commits it.
``qa.json`` passes everything: its verdict has ``"criteria": []``, so it vouches for no
criterion in particular; a server that counts checked criteria sees none.
``mergemaster.json`` resolves every conflict of a squash merge by taking the feature side,
commits the result, and reports ``{"resolved": true, ...}``.
Find them with ``gangline.fake.cli.shipped_scenario(name)``.
"""
