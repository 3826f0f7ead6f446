"""`tdp evidence keygen | pack | verify`: signed evidence bundles for litigation."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.errors import user_errors

_FILE = click.Path(path_type=Path, dir_okay=False)


@click.group("evidence")
def evidence_group() -> None:
    """Signed, self-verifying evidence bundles: reports, canaries, custody log, PDF."""


@evidence_group.command("keygen")
@click.option("--out", "-o", type=_FILE, required=True, help="Private key file (PEM, mode 0600); "
              "the public key goes to OUT.pub.")
@click.option("--force", is_flag=True, help="Overwrite an existing key.")
@user_errors
def keygen_cmd(out: Path, force: bool) -> None:
    """Make an Ed25519 signing key; publish its fingerprint so that others can pin it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from harness.evidence.signing import key_fingerprint, write_key

    key = Ed25519PrivateKey.generate()
    _, pub = write_key(key, out, force)
    click.echo(f"private key: {out} (keep it; mode 0600)\npublic key:  {pub}\n"
               f"fingerprint: {key_fingerprint(key.public_key())}")


def _signer(key: Path, cert: Path | None):
    from harness.evidence.signing import SigningError, load_signer

    try:
        return load_signer(key, cert)
    except SigningError as e:
        if "encrypted" not in str(e).lower() and "password" not in str(e).lower():
            raise
    password = click.prompt(f"passphrase of {key}", hide_input=True, err=True)
    return load_signer(key, cert, password.encode())


def _stamper(local_tsa: Path | None, tsa_url: str | None, tsa_chain: Path | None):
    """digest -> verified RFC 3161 record, from the local test TSA or a real one (or None)."""
    from harness.protocol.timestamp import record_from_reply, request_from_tsa, timestamp_request

    if local_tsa is None and tsa_url is None:
        return None
    if tsa_url is not None and tsa_chain is None:
        raise click.UsageError("--tsa needs --tsa-chain TSA-CHAIN.pem to verify the TSA's reply")
    if local_tsa is not None:
        from harness.protocol.local_tsa import LocalTSA

        made = (local_tsa / "tsa.pem").exists()
        tsa = LocalTSA(local_tsa) if made else LocalTSA.create(local_tsa)
        chain, ask = tsa.chain_pem, tsa.stamp
    else:
        chain, ask = tsa_chain.read_bytes(), lambda req: request_from_tsa(tsa_url, req)

    def stamp(digest: str):
        request = timestamp_request(digest)
        return record_from_reply(ask(request), digest, chain, request, tsa_url)

    return stamp


@evidence_group.command("pack")
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--out", "-o", type=_FILE, required=True, help="The bundle, e.g. CASE.tdp.zip.")
@click.option("--key", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              required=True,
              help="Ed25519 private key that signs the manifest (tdp evidence keygen).")
@click.option("--cert", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="X.509 certificate for the key (optional).")
@click.option("--canaries", "canary_files", multiple=True,
              type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="A canary file of the reports (default: the paths the reports recorded).")
@click.option("--reveal-secret", is_flag=True, help="Include each canary file's secret seed "
              "(FILE.secret): anyone can then re-derive the canaries. Irreversible once shared.")
@click.option("--no-pdf", is_flag=True, help="Leave out the PDF (no WeasyPrint needed).")
@click.option("--pdf-out", type=_FILE, help="Also write the PDF here.")
@click.option("--title", help="Title of the bundle and its PDF (default: the first report's).")
@click.option("--author", default="", help="Author named in the PDF's metadata.")
@click.option("--tsa", "tsa_url", help="RFC 3161 TSA URL: timestamp the manifest (network).")
@click.option("--tsa-chain", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The TSA's certificate chain (PEM), to verify its reply.")
@click.option("--local-tsa", type=click.Path(path_type=Path, file_okay=False),
              help="Timestamp with a LOCAL TEST TSA in this folder (tests and demos only).")
@click.option("--force", is_flag=True, help="Overwrite an existing bundle.")
@user_errors
def pack_cmd(run_dirs, out, key, cert, canary_files, reveal_secret, no_pdf, pdf_out, title,
             author, tsa_url, tsa_chain, local_tsa, force) -> None:
    """Pack RUN_DIR... (each holding report.json) into one signed bundle with a PDF report."""
    import sys

    from canaries.files import atomic_write_bytes, check_new_output
    from harness.evidence.custody_hook import current_user, redact_argv
    from harness.evidence.pack import PackOptions, pack

    if pdf_out is not None:
        check_new_output(pdf_out, force, "PDF")
    if no_pdf and pdf_out is not None:
        raise click.UsageError("--no-pdf contradicts --pdf-out")
    argv = redact_argv(click.get_current_context().command, sys.argv[1:])
    options = PackOptions(tuple(canary_files), reveal_secret, not no_pdf, title, author,
                          _stamper(local_tsa, tsa_url, tsa_chain),
                          {"argv": argv, "user": current_user()})
    result = pack(tuple(run_dirs), out, _signer(key, cert), options, force)
    if pdf_out is not None and result.pdf is not None:
        atomic_write_bytes(pdf_out, result.pdf, force=force, what="PDF")
    m = result.manifest
    click.echo(f"bundle: {out} ({result.size:,} bytes, {len(m.members)} members, "
               f"{result.seconds:.1f} s); signed by key {m.signer['public_key_sha256']}")
    if not reveal_secret:
        click.echo("secret seeds not included (--reveal-secret): the canaries' derivation stays "
                   "unchecked until they are revealed")
    click.echo(f"check it: tdp evidence verify {out} --signer {m.signer['public_key_sha256']}")


@evidence_group.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--signer", "signers", multiple=True, help="The key the bundle must be signed by: "
              "its fingerprint (64 hex) or its public key / certificate file. Repeatable.")
@click.option("--trust", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="X.509 root(s), PEM: the signer's certificate must be issued by one.")
@click.option("--tsa-root", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Trusted TSA root(s), PEM, for the manifest's timestamp.")
@click.option("--model", "models", multiple=True, help="Model spec to re-score with; each audit "
              "uses the given model whose identity is its model's. Repeatable.")
@click.option("--commitment", "commitments", multiple=True,
              help="A commitment the owner published (64 hex digits, repeatable).")
@click.option("--rescore", "sample", type=click.IntRange(min=0), default=None,
              help="Counterfactuals re-scored at random per audit, besides every canary.")
@click.option("--rescore-seed", type=int, default=None,
              help="Seed of that sample (default: fresh).")
@click.option("--out", "-o", type=_FILE, help="Also write the verdict page here.")
@user_errors
def verify_cmd(bundle, signers, trust, tsa_root, models, commitments, sample, rescore_seed,
               out) -> None:
    """Check BUNDLE: signature, every member's hash, custody, then every report's claims."""
    import secrets

    from canaries.files import atomic_write_text
    from harness.evidence.signing import pinned_fingerprints
    from harness.evidence.verdict import passed, render_verdict
    from harness.evidence.verify import EvidenceOptions, bundle_digest, verify_bundle
    from harness.verify.rescore import DEFAULT_COUNTERFACTUAL_SAMPLE, RescorePlan

    for c in commitments:
        if len(c) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in c):
            raise click.BadParameter(f"{c!r} is not 64 hex digits", param_hint="--commitment")
    if not models and (sample is not None or rescore_seed is not None):
        raise click.UsageError("--rescore/--rescore-seed need --model")
    plan = RescorePlan(counterfactuals=DEFAULT_COUNTERFACTUAL_SAMPLE if sample is None else sample,
                       seed=secrets.randbits(63) if rescore_seed is None else rescore_seed)
    options = EvidenceOptions(
        frozenset(pinned_fingerprints(signers)), trust.read_bytes() if trust else None,
        tsa_root.read_bytes() if tsa_root else None, tuple(models), tuple(commitments), plan)
    checks = verify_bundle(bundle, options)
    page = render_verdict(bundle, bundle_digest(bundle), checks)
    if models:
        page += f"\n(rescore seed {plan.seed}: pass --rescore-seed to repeat this check)"
    click.echo(page)
    if out is not None:
        atomic_write_text(out, page + "\n", what="verdict")
    if not passed(checks):
        raise SystemExit(1)


def register(group: click.Group) -> None:
    group.add_command(evidence_group)
