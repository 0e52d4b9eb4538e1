"""Network namespaces for a cluster: each node on its own address, links cut and restored for
real with iptables. Needs root, iproute2 and iptables.

    python scripts/netns.py up --nodes 4 [--tag T] [--subnet 10.77.0]   # prints the addresses
    python scripts/netns.py exec --tag T --node 0 -- CMD ...             # run CMD in node 0's
    python scripts/netns.py cut --tag T 0 1                              # drop traffic 0 <-> 1
    python scripts/netns.py restore --tag T 0 1                          # undo that cut
    python scripts/netns.py isolate --tag T 0                            # cut 0 from everyone
    python scripts/netns.py loss --tag T 0.1                             # drop 10 % of packets
    python scripts/netns.py heal --tag T                                 # restore every link
    python scripts/netns.py down --tag T                                 # remove everything

The commands after `up` find the lab's nodes from its namespaces. `up` refuses a tag whose lab
(or a part of one) exists, and removes what it made if it fails or is interrupted; a node number
outside the lab is refused before any rule changes.

Layout for tag T and n nodes: namespaces `mcT-n0`..; in each, `eth0` with SUBNET.(i+1)/24, the
far end of a veth pair `mcT-v<i>` plugged into the bridge `mcT-br` in the calling namespace,
which holds SUBNET.254, so the caller (a test, the CLI) reaches every node directly. Each
namespace has an iptables chain MILLCHAIN hooked into INPUT and OUTPUT; faults are rules in that
chain, and healing flushes it. (The netem qdisc is not available everywhere, so latency comes
from the nodes' own fault-injection layer, node/faults.py.)
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

CHAIN = "MILLCHAIN"
SUBNET_DEFAULT = "10.77.0"
BRIDGE_HOST = 254
TAG_LENGTH_MAX = 6  # interface names must stay within 15 characters
VETH_GONE_S = 5.0


class NetnsError(Exception):
    """A namespace command failed, or this host cannot run namespaces."""


def run(argv: Sequence[str]) -> str:
    """Run one command; raise NetnsError with its stderr if it fails."""
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None if they can (creates and removes a probe)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 iptables)"
    probe = f"mcprobe{secrets.token_hex(3)}"
    try:
        run(["ip", "netns", "add", probe])
    except NetnsError as exc:
        return f"ip netns is not permitted here: {exc}"
    try:
        run(["ip", "netns", "exec", probe, "iptables", "-S"])
    except NetnsError as exc:
        return f"iptables does not work inside a namespace: {exc}"
    finally:
        run(["ip", "netns", "delete", probe])
    return None


def free_subnet() -> str:
    """The first 10.77.X prefix with no address of this namespace inside it."""
    used = set(re.findall(r"inet (10\.77\.\d+)\.\d+/", run(["ip", "-o", "-4", "addr", "show"])))
    for third in range(256):
        prefix = f"10.77.{third}"
        if prefix not in used:
            return prefix
    raise NetnsError("every 10.77.X.0/24 subnet is in use")


def lab_nodes(tag: str) -> int:
    """How many nodes the lab `tag` has: one past the highest index of its namespaces (0 when
    none is left)."""
    found = re.findall(rf"^mc{re.escape(tag)}-n(\d+)\b", run(["ip", "netns", "list"]), re.M)
    return 1 + max(int(i) for i in found) if found else 0


def bridge_exists(tag: str) -> bool:
    return f" mc{tag}-br:" in run(["ip", "-o", "link", "show"])


def subnet_of(tag: str) -> str:
    """The subnet prefix of the lab `tag`, read from its bridge's address."""
    bridge = f"mc{tag}-br"
    found = re.search(
        rf"inet (\d+\.\d+\.\d+)\.{BRIDGE_HOST}/24",
        run(["ip", "-o", "-4", "addr", "show", "dev", bridge]),
    )
    if found is None:
        raise NetnsError(f"bridge {bridge} has no .{BRIDGE_HOST}/24 address; is the lab up?")
    return found.group(1)


@dataclass(frozen=True, slots=True)
class Lab:
    """n namespaces on one bridge; node i is namespace `namespace(i)` at `address(i)`."""

    tag: str
    nodes: int
    subnet: str = SUBNET_DEFAULT

    def __post_init__(self) -> None:
        if not re.fullmatch(rf"[a-z0-9]{{1,{TAG_LENGTH_MAX}}}", self.tag):
            raise NetnsError(f"tag must be 1-{TAG_LENGTH_MAX} lowercase letters or digits")
        if not 1 <= self.nodes <= BRIDGE_HOST - 1:
            raise NetnsError(f"between 1 and {BRIDGE_HOST - 1} nodes, got {self.nodes}")
        try:
            ipaddress.IPv4Network(f"{self.subnet}.0/24")
        except ValueError:
            raise NetnsError(
                f"subnet must be the first three octets of an IPv4 address, like "
                f"{SUBNET_DEFAULT}; got {self.subnet!r}"
            ) from None

    @property
    def bridge(self) -> str:
        return f"mc{self.tag}-br"

    @property
    def bridge_address(self) -> str:
        return f"{self.subnet}.{BRIDGE_HOST}"

    def namespace(self, i: int) -> str:
        return f"mc{self.tag}-n{i}"

    def veth(self, i: int) -> str:
        return f"mc{self.tag}-v{i}"

    def address(self, i: int) -> str:
        return f"{self.subnet}.{i + 1}"

    @property
    def addresses(self) -> list[str]:
        return [self.address(i) for i in range(self.nodes)]

    def exec_prefix(self, i: int) -> list[str]:
        """Prefix a command with this to run it inside node i's namespace."""
        return ["ip", "netns", "exec", self.namespace(i)]

    # -- building and tearing down -------------------------------------------------------------

    def up(self) -> None:
        """Create the bridge, the namespaces and their links; on failure or interruption,
        remove what was made. A lab with this tag (or a part of one) that exists already is
        refused and left alone: removing it would cut the nodes running in it."""
        if lab_nodes(self.tag) or bridge_exists(self.tag):
            raise NetnsError(
                f"a lab tagged {self.tag} exists already (namespaces mc{self.tag}-n*, bridge "
                f"{self.bridge}); pick another tag, or remove it with `down --tag {self.tag}`"
            )
        try:
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
            run(["ip", "addr", "add", f"{self.bridge_address}/24", "dev", self.bridge])
            run(["ip", "link", "set", self.bridge, "up"])
            for i in range(self.nodes):
                self._add_node(i)
        except BaseException:
            self.down()
            raise

    def _add_node(self, i: int) -> None:
        ns, veth = self.namespace(i), self.veth(i)
        inside = f"mc{self.tag}-p{i}"
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", inside])
        run(["ip", "link", "set", inside, "netns", ns])
        run(["ip", "link", "set", veth, "master", self.bridge])
        run(["ip", "link", "set", veth, "up"])
        in_ns = self.exec_prefix(i)
        run([*in_ns, "ip", "link", "set", inside, "name", "eth0"])
        run([*in_ns, "ip", "addr", "add", f"{self.address(i)}/24", "dev", "eth0"])
        run([*in_ns, "ip", "link", "set", "eth0", "up"])
        run([*in_ns, "ip", "link", "set", "lo", "up"])
        run([*in_ns, "iptables", "-N", CHAIN])
        run([*in_ns, "iptables", "-I", "INPUT", "-j", CHAIN])
        run([*in_ns, "iptables", "-I", "OUTPUT", "-j", CHAIN])

    def down(self) -> list[str]:
        """Remove every namespace, link and the bridge that exist; returns what could not be
        removed (empty when all went). Deleting a namespace deletes its end of the veth pair,
        and with it the other end."""
        problems: list[str] = []
        namespaces = set(run(["ip", "netns", "list"]).split())
        for i in range(self.nodes):
            if self.namespace(i) in namespaces:
                problems += _attempt(["ip", "netns", "delete", self.namespace(i)])
        # A deleted namespace takes its end of each veth pair, and the kernel then removes our
        # end too, a moment later: wait for that before deleting what is left ourselves.
        deadline = time.monotonic() + VETH_GONE_S
        while True:
            links = run(["ip", "-o", "link", "show"])
            left = [self.veth(i) for i in range(self.nodes) if f" {self.veth(i)}@" in links]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for veth in left:
            problems += _attempt(["ip", "link", "delete", veth])
        if f" {self.bridge}:" in links:
            problems += _attempt(["ip", "link", "delete", self.bridge])
        return problems

    # -- faults --------------------------------------------------------------------------------

    def check_nodes(self, *nodes: int) -> None:
        """NetnsError unless every number names a node of this lab."""
        outside = [i for i in nodes if not 0 <= i < self.nodes]
        if outside:
            raise NetnsError(
                f"no node {', '.join(map(str, outside))} in lab {self.tag}; its nodes are "
                f"0 to {self.nodes - 1}"
            )

    def _rule(self, i: int, *rule: str, action: str = "-A") -> None:
        run([*self.exec_prefix(i), "iptables", action, CHAIN, *rule])

    def cut(self, a: int, b: int) -> None:
        """Drop every packet between nodes a and b, both ways, in both namespaces."""
        self._link_rules(a, b, "-A")

    def restore(self, a: int, b: int) -> None:
        """Undo one `cut(a, b)` (other rules stay)."""
        self._link_rules(a, b, "-D")

    def _link_rules(self, a: int, b: int, action: str) -> None:
        self.check_nodes(a, b)
        if a == b:
            raise NetnsError(f"node {a} has no link to itself")
        for here, there in ((a, b), (b, a)):
            self._rule(here, "-s", self.address(there), "-j", "DROP", action=action)
            self._rule(here, "-d", self.address(there), "-j", "DROP", action=action)

    def isolate(self, i: int) -> None:
        self.check_nodes(i)
        for other in range(self.nodes):
            if other != i:
                self.cut(i, other)

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Cut every link between nodes of different groups."""
        self.check_nodes(*(i for group in groups for i in group))
        for g, group in enumerate(groups):
            for other in groups[g + 1 :]:
                for a in group:
                    for b in other:
                        self.cut(a, b)

    def loss(self, i: int, probability: float) -> None:
        """Drop packets arriving at node i at random with `probability`."""
        self.check_nodes(i)
        if not 0.0 <= probability <= 1.0:
            raise NetnsError(f"loss is a probability in [0, 1], got {probability}")
        self._rule(
            i,
            "-i",
            "eth0",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            f"{probability:.4f}",
            "-j",
            "DROP",
        )

    def heal(self, i: int | None = None) -> None:
        """Remove every fault rule (of node i, or of every node)."""
        if i is not None:
            self.check_nodes(i)
        for j in range(self.nodes) if i is None else (i,):
            run([*self.exec_prefix(j), "iptables", "-F", CHAIN])


def _attempt(argv: list[str]) -> list[str]:
    try:
        run(argv)
    except NetnsError as exc:
        return [str(exc)]
    return []


def new_tag() -> str:
    return secrets.token_hex(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "heal", "cut", "restore", "isolate", "loss", "exec"):
        sub = commands.add_parser(name)
        sub.add_argument("--tag", default=None, help="Names the lab (new one for `up`).")
        sub.add_argument(
            "--nodes",
            type=int,
            default=None,
            help="Nodes in the lab (`up`: default 4). The other commands find them from the "
            "lab's namespaces, and refuse a number that differs; `down` removes as many as "
            "either says.",
        )
        sub.add_argument(
            "--subnet",
            default=None,
            help="First three octets, e.g. 10.77.0 (default: `up` picks a free one in 10.77.X, "
            "the other commands read it from the lab's bridge).",
        )
        if name in ("cut", "restore"):
            sub.add_argument("a", type=int)
            sub.add_argument("b", type=int)
        elif name == "isolate":
            sub.add_argument("node", type=int)
        elif name == "loss":
            sub.add_argument("probability", type=float)
            sub.add_argument("--node", type=int, action="append", help="Default: every node.")
        elif name == "exec":
            sub.add_argument("--node", type=int, required=True)
            sub.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command != "up" and args.tag is None:
        parser.error("--tag is required (the one `up` printed)")
    try:
        return _dispatch(_lab_for(args, args.tag or new_tag()), args)
    except NetnsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)  # `up` removed what it had made
        return 130


def _lab_for(args: argparse.Namespace, tag: str) -> Lab:
    """The lab a command works on: a new one for `up`; otherwise the one whose namespaces
    exist, with as many nodes as they show (a default of 4 would leave the others of a larger
    lab cut, or behind after `down`)."""
    if args.command == "up":
        nodes = 4 if args.nodes is None else args.nodes
        return Lab(tag=tag, nodes=nodes, subnet=args.subnet or free_subnet())
    found = lab_nodes(tag)
    if args.command == "down":
        if not found and not bridge_exists(tag):
            raise NetnsError(f"no lab tagged {tag} here (no namespace mc{tag}-n*, no bridge)")
        # Whatever is left of it goes; its subnet does not matter for that.
        nodes = max(found, args.nodes or 0, 1)
        return Lab(tag=tag, nodes=nodes, subnet=args.subnet or SUBNET_DEFAULT)
    if not found:
        raise NetnsError(f"no lab tagged {tag} here (no namespace mc{tag}-n*); is it up?")
    if args.nodes is not None and args.nodes != found:
        raise NetnsError(f"lab {tag} has {found} nodes, not {args.nodes}")
    return Lab(tag=tag, nodes=found, subnet=args.subnet or subnet_of(tag))


def _dispatch(lab: Lab, args: argparse.Namespace) -> int:
    match args.command:
        case "up":
            reason = unavailable_reason()
            if reason is not None:
                raise NetnsError(reason)
            lab.up()
            print(f"tag {lab.tag}; bridge {lab.bridge} at {lab.bridge_address}")
            for i in range(lab.nodes):
                print(f"  node {i}: namespace {lab.namespace(i)}, address {lab.address(i)}")
            print(f"init a cluster: millchain init --hosts {','.join(lab.addresses)} --port 26600")
        case "down":
            problems = lab.down()
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            return 1 if problems else 0
        case "heal":
            lab.heal()
        case "cut":
            lab.cut(args.a, args.b)
        case "restore":
            lab.restore(args.a, args.b)
        case "isolate":
            lab.isolate(args.node)
        case "loss":
            nodes = args.node or range(lab.nodes)
            lab.check_nodes(*nodes)  # all of them before any rule
            if not 0.0 <= args.probability <= 1.0:
                raise NetnsError(f"loss is a probability in [0, 1], got {args.probability}")
            for i in nodes:
                lab.loss(i, args.probability)
        case "exec":
            lab.check_nodes(args.node)
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not command:
                raise NetnsError("exec needs a command after --")
            return subprocess.call([*lab.exec_prefix(args.node), *command])
    return 0


if __name__ == "__main__":
    sys.exit(main())
