"""`tdp canaries timestamp | assign`: the protocol-v2 steps between commitment and planting."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.canaries_cmd import canaries_group
from harness.cli.errors import user_errors


@canaries_group.command("timestamp")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--tsa-url", help="Send the request to this RFC 3161 TSA (needs a network).")
@click.option("--reply", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The TSA's reply (.tsr) to the request this command wrote (FILE.tsq).")
@click.option("--chain", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The TSA's certificate chain (PEM, TSA certificate first, up to its root).")
@click.option("--local-tsa", type=click.Path(path_type=Path, file_okay=False),
              help="Stamp with a LOCAL TEST TSA kept in this folder (demos and tests only; "
              "reports label it as no trusted timestamp).")
@user_errors
def timestamp_cmd(file: Path, tsa_url, reply, chain, local_tsa) -> None:
    """Prove when FILE's commitment existed: an RFC 3161 timestamp, stored in FILE.

    Without options: writes FILE.tsq to send to any TSA, e.g.
    `curl -H 'Content-Type: application/timestamp-query' --data-binary @FILE.tsq URL > FILE.tsr`,
    then run again with --reply FILE.tsr --chain TSA-CHAIN.pem.
    """
    from canaries.canary_set import load_canary_set, save_canary_set
    from canaries.files import atomic_write_bytes
    from harness.protocol.pool import add_timestamp, iso_time, pinned_round_time
    from harness.protocol.timestamp import record_from_reply, request_from_tsa, timestamp_request

    cs = load_canary_set(file)
    if cs.version != 2:
        raise click.ClickException(f"{file}: a v1 canary set has no timestamp step; draw a v2 set")
    tsq = file.with_name(file.name + ".tsq")
    if local_tsa:
        from harness.protocol.local_tsa import LocalTSA

        tsa = LocalTSA(local_tsa) if (local_tsa / "tsa.pem").exists() else LocalTSA.create(local_tsa)
        request = timestamp_request(cs.commitment)
        record = record_from_reply(tsa.stamp(request), cs.commitment, tsa.chain_pem, request)
    elif tsa_url or reply:
        if chain is None:
            raise click.UsageError("--chain TSA-CHAIN.pem is needed to verify the TSA's reply")
        if tsa_url:
            request = timestamp_request(cs.commitment)
            answer = request_from_tsa(tsa_url, request)
        else:
            request = tsq.read_bytes() if tsq.exists() else None
            answer = reply.read_bytes()
        record = record_from_reply(answer, cs.commitment, chain.read_bytes(), request, tsa_url)
    else:
        atomic_write_bytes(tsq, timestamp_request(cs.commitment))
        click.echo(f"wrote {tsq}: send it to an RFC 3161 TSA before round {cs.beacon['round']} "
                   f"is published ({iso_time(pinned_round_time(cs))}), then run this command again "
                   "with --reply and --chain")
        return
    cs, info = add_timestamp(cs, record)
    save_canary_set(cs, file)
    click.echo(f"timestamped {file}: {info.gen_time.isoformat()} by {info.tsa_subject} "
               f"(root sha256 {info.root_sha256})")
    click.echo(f"beacon round {cs.beacon['round']} is published at {iso_time(pinned_round_time(cs))}; "
               "then run `tdp canaries assign`")


@canaries_group.command("assign")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--beacon", "beacon_arg", help="drand:CHAIN[:ROUND] (must be the committed round).")
@click.option("--randomness", help="The round's randomness (hex).")
@click.option("--signature", help="The round's BLS signature (hex).")
@click.option("--previous-signature", help="The previous round's signature (chained chains).")
@click.option("--round-json", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="The round as drand serves it (curl https://api.drand.sh/v2/beacons/quicknet/"
              "rounds/ROUND > round.json).")
@click.option("--local-beacon", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Sign the round with a LOCAL TEST beacon key (demos and tests only).")
@user_errors
def assign_cmd(file: Path, beacon_arg, randomness, signature, previous_signature, round_json,
               local_beacon) -> None:
    """Derive FILE's canaries from its committed beacon round (signature checked offline)."""
    from canaries.canary_set import load_canary_set, read_secret, save_canary_set, secret_path
    from harness.protocol.beacon import BeaconRound, parse_beacon_arg
    from harness.protocol.pool import assign, pinned_chain

    cs = load_canary_set(file)
    if cs.version != 2:
        raise click.ClickException(f"{file}: only v2 canary sets are assigned by a beacon round")
    chain, pinned = pinned_chain(cs), int(cs.beacon["round"])
    if beacon_arg:
        name, rnd = parse_beacon_arg(beacon_arg)
        if name not in (chain.name, chain.chain_hash) or rnd not in (None, pinned):
            raise click.BadParameter(f"the commitment pins round {pinned} of {chain.name}, "
                                     f"not {beacon_arg}", param_hint="--beacon")
    if local_beacon:
        from harness.protocol.local_beacon import LocalTestBeacon

        r = LocalTestBeacon.load(local_beacon).sign(pinned)
    elif round_json:
        r = BeaconRound.from_dict(json.loads(round_json.read_text("utf-8")), chain.chain_hash)
    elif randomness and signature:
        r = BeaconRound(chain.chain_hash, pinned, randomness, signature, previous_signature)
    else:
        raise click.UsageError("give the round: --randomness and --signature, --round-json, "
                               "or --local-beacon")
    cs = assign(cs, read_secret(secret_path(file)), r)
    save_canary_set(cs, file)
    click.echo(f"assigned {file}: {cs.k} canaries and {len(cs.counterfactuals)} counterfactuals "
               f"derived from {chain.name} round {pinned}")
    click.echo("Plant the canaries now (`tdp canaries inject` / `embed`); keep the file private.")


def register(group: click.Group) -> None:
    """Commands attach to the `canaries` group when this module is imported."""
