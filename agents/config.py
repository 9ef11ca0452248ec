"""Training configuration (one dataclass; the ``chronotope train`` CLI is generated from it by tyro)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass
class TrainConfig:
    """Options of ``chronotope train``."""

    env: str = "chronotope/PointNav-v0"
    """Environment id: any id gymnasium.make accepts, including ``module:Id``."""
    agent: str = "none"
    """Memory core: none, lstm, gru, trxl, hcam, janus, ... (see chronotope.memory.available_memories())."""
    algo: Literal["ppo", "sb3-ppo", "recurrent-ppo", "bc", "dagger"] = "ppo"
    """Training algorithm."""
    steps: int = 100_000
    """Environment steps (all environments together)."""
    seed: int = 0
    """Seed of the model, the optimiser and the environments."""
    name: str | None = None
    """Run name: outputs go to ``out_dir/name`` (default: env-agent-algo-seed)."""
    out_dir: Path = Path("runs")
    """Folder holding runs."""
    num_envs: int = 16
    """Environments stepped in one batch."""
    rollout_len: int = 128
    """Steps per environment between updates (T)."""
    bptt_len: int = 32
    """Length of the training sequences; memory states are stored at their starts (truncated BPTT)."""
    bptt_overlap: int | None = None
    """Steps before each training sequence replayed through the memory with gradient but no loss (from the
    previous rollout where needed), so a decision's gradient reaches observations up to ``bptt_len +
    bptt_overlap`` steps back whatever the rollout boundaries. None: the env's declared cue-to-query span - 1
    for memory cores (0 for ``none`` and envs that declare no span), capped at ``rollout_len``."""
    replay: Literal["full", "gradient"] = "full"
    """How a training window's memory state is rebuilt: "full" replays all ``bptt_overlap`` steps with the current
    parameters (beyond the memory's ``gradient_horizon`` without autograd); "gradient" replays only the steps that
    pass gradient (at most the horizon) and starts from the memory state the rollout stored there, computed with
    the rollout's parameters, as sb3-contrib's RecurrentPPO and most PPO-with-memory code do. Same gradients
    reach every input; the state is up to one update stale. Changes only cores that declare a horizon (HCAM: no
    replay at all; ~25% less update time on ObjectRecall); recurrent cores replay as before."""
    aux_coef: float = 0.0
    """Weight of an auxiliary self-supervised loss (0: off, for fair baselines): a linear head on the memory output
    predicts the env's ``aux_key`` info (what the task says must be remembered, e.g. ObjectRecall's cued object
    relative to the agent); its gradient shapes what the memory keeps. Applied to every core alike."""
    aux_key: str = "memory_target"
    """Info key (float [N, D]) that the auxiliary loss predicts; several separated by commas ("memory_slot,
    memory_patterns"), each with its own head (the first the readout's) and its own masked mean in the loss."""
    readout_key: str | None = None
    """Dict observation key of a [K, F] set of entity rows (e.g. ObjectRecall's ``candidates``) that the policy
    reads through weights a linear head puts on the K rows from the memory output (None: no readout). That head
    is the auxiliary head, taught by the auxiliary loss alone (aux_coef > 0; ``aux_key`` must label the rows with
    K values, e.g. ``memory_slot``): the memory is taught which row to remember and the policy reads that row.
    Every core alike."""
    readout_query: str | None = None
    """Dict observation key of a [Q] query (e.g. Ballet's ``instruction``, a one-hot over 8 patterns) that makes the
    readout a lookup: the address head then predicts a [K, Q] table (row k's score for each query value, the
    first ``aux_key`` labelling it with K * Q values, e.g. ``memory_patterns``) and row k's weight is its table row
    dotted with the current query. The memory keeps the table (which dancer did which pattern), the readout does
    the match; without it the core must learn the product of its table and the query itself, which a GRU that
    had learnt the table (accuracy 1.000) had not after 860k steps (docs/RESULTS.md 1). Needs ``readout_key``."""
    readout_match: str | None = None
    """Dict observation key of a [K, P] row attribute (e.g. ColourSequence's ``pad_colour``, row k the one-hot of
    pad k's colour) that makes the readout a match by content: the address head predicts a [P] vector (with
    ``readout_query`` a [Q, P] table dotted with the query, e.g. the sequence's colours by position, labelled by
    ``memory_sequence``) and row k's weight is its attribute dotted with that vector. For rows whose order says
    nothing (re-drawn when the pads move): the memory keeps what to look for, the readout finds the row that shows
    it. Needs ``readout_key``."""
    obs_scale: Literal["bounds", "magnitude"] = "bounds"
    """How the encoders scale float Boxes with finite bounds: "bounds" maps [low, high] to [-1, 1]; "magnitude"
    divides by max(|low|, |high|), so a 0 stays 0 (sparse entity rows, e.g. Ballet's ``dancers``, stay sparse: a
    GRU named the dancers' patterns from them ~4x faster than from the [-1, 1] map, in which every absent value
    becomes -1)."""
    image_encoder: Literal["nature", "small", "pool", "keypoints"] = "nature"
    """CNN of image observations: "nature" (the DQN Nature 2015 CNN, 32-64-64 channels), "small" (the 2013 DQN
    CNN, 16-32 channels; about a third of the cost at 64 x 64, which is most of a pixel update on CPU) or "pool" (no
    convolution: every channel averaged over an 8 x 8 grid, then the linear layer; the coarse layout only, for
    agents whose detail comes from ``row_glimpse``) or "keypoints" (4 x 4 patch convolution, a 3 x 3 convolution to 16
    maps and a spatial softmax: 16 image positions, the deep-spatial-autoencoder / robomimic encoder for where
    things are, as a manipulation task asks)."""
    id_embed: int = 0
    """> 0: segmentation images (one channel of integer ids, e.g. the arm cameras' ``<cam>_seg`` body ids) are read
    through a learned embedding of this many channels per id instead of as an intensity (0: as an intensity, scaled
    by the largest id, as before)."""
    fuse_images: bool = False
    """One CNN over the stacked channels of equal-size images (rgb + depth as one [H, W, 4] input, the usual RGB-D
    encoder) instead of one CNN per image key."""
    row_vision: bool = False
    """The ``readout_key`` rows attend over the camera CNN's feature map (:class:`~chronotope.agents.encoders.
    RowVisionEncoder`): what the image shows at each object becomes a column of its row (ObjectRecall from pixels:
    the magenta cue). Needs ``readout_key`` and one camera image (or one ``fuse_images`` group)."""
    row_glimpse: str | None = None
    """With ``row_vision``: "X,Y,HFOV", the rows' columns holding their object's position in the camera frame (x
    forward, y left) and the camera's horizontal field of view in degrees (ObjectRecall's ``candidates``:
    "1,2,90"). Each row then reads the pixel column where its object projects (a pinhole projection) instead of
    attending over the CNN's feature map (:class:`~chronotope.agents.encoders.RowVisionEncoder`)."""
    memory_keys: str | None = None
    """Comma-separated Dict keys that alone feed the memory core (their own encoder and projection; e.g.
    TargetSequence's ``site_colours``); the policy and value still read every key's features beside the memory
    output. A memory then stores what those keys showed and cannot key its contents on the rest (poses, distances
    that tell episodes apart), which on TargetSequence let the colour table be memorised per episode instead of
    learnt (docs/RESULTS.md 1). None: the memory reads every key."""
    entity_keys: str | None = None
    """Comma-separated Dict keys of row-aligned [K, F] entity rows (row k of each describes object k, e.g.
    "object_pose,cue" on PairRecall) encoded together as a set: each row's columns through one shared MLP, summed
    over the rows (:class:`~chronotope.agents.encoders.EntityEncoder`), instead of one flat encoder per key. None:
    every key apart."""
    obs_norm: bool = False
    """Scale the observation entries whose Box bounds are infinite (object poses, map features) by running
    statistics, mean and standard deviation of what the rollouts have shown, updated after each update and saved
    with the model (:class:`~chronotope.agents.encoders.UnboundedScaling`; SB3's ``VecNormalize`` for those
    entries alone). Bounded entries keep the map of their bounds. Off: unbounded entries stay unscaled (an arm's
    object poses in metres, spread over ~0.25)."""
    memory_grad: Literal["all", "aux"] = "all"
    """What trains the memory core: "all" losses, or the auxiliary loss alone ("aux": the policy and value heads
    read the memory output with its gradient stopped; needs aux_coef > 0). On Ballet the policy gradient in the
    memory kept the auxiliary loss at chance for 170k+ steps where the auxiliary loss alone taught the same model
    to name the patterns in ~750 updates of the same size (docs/RESULTS.md 1)."""
    aux_lr: float | None = None
    """With memory_grad="aux": the learning rate of what the auxiliary loss alone trains (the memory core, the
    auxiliary heads and the readout's address head), which then form their own optimizer group with their own
    gradient-norm clip, annealed like ``lr``. That part is supervised learning, and Adam's step does not scale with
    ``aux_coef`` (its gradient is the only one those parameters get), so this is the knob that sets how fast the
    memory learns. None: one group at ``lr``."""
    epochs: int = 4
    """PPO epochs per update."""
    minibatches: int = 4
    """Minibatches per epoch (each a set of whole sequences)."""
    lr: float = 3e-4
    """Adam learning rate."""
    anneal_lr: bool = True
    """Linearly decay the learning rate to 0."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """PPO ratio clip."""
    vf_clip: float | None = 0.2
    """Value clip (None: unclipped)."""
    ent_coef: float = 0.01
    """Entropy bonus."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping."""
    hidden: int = 128
    """Width of the encoder output / memory input."""
    memory_cfg: str = "{}"
    """JSON object of memory config fields, e.g. '{"hidden_size": 64}'."""
    env_kwargs: str = "{}"
    """JSON object of env keyword arguments, e.g. '{"obs_mode": "state"}'."""
    wrappers: str = ""
    """Comma-separated map wrappers for every env (training with any algo, and eval; empty: none), applied in this
    order whatever the order given: depth (renders depth in state mode), occupancy, octree, topology, mem4nav
    (see chronotope.maps.wrappers). The maps read depth: use a pixel obs_mode or the depth wrapper."""
    device: Literal["cpu", "cuda", "auto"] = "auto"
    """Torch device of the policy and the batched envs' renderer."""
    torch_threads: int = 1
    """Torch intra-op threads on CPU (1 is fastest for these small models and leaves cores to the envs)."""
    checkpoint_every: int = 10
    """Updates between checkpoints."""
    checkpoint_minutes: float = 10.0
    """Also checkpoint when this many minutes have passed since the last checkpoint (an early crash loses at most
    this much work)."""
    resume: Path | None = None
    """Continue the run in this folder (where it stays, wherever it was made) from its last checkpoint. With
    ``--steps`` the run's total becomes that (it must exceed what is done); other settings are the run's own."""
    overwrite: bool = False
    """Replace an existing run of the same name (without it, an existing run folder is refused)."""
    progress: bool = True
    """Show a progress bar."""
    bc_epochs: int = 4
    """Imitation: passes over the aggregated dataset per iteration."""
    dagger_iters: int = 4
    """Imitation: DAgger iterations after behaviour cloning."""
    learner_eval_episodes: int = 0
    """Imitation: episodes of a learner-only evaluation after each iteration (0: none), logged as learner_*."""
    dataset: str | None = None
    """Imitation (``--algo bc``): learn from this stored Minari dataset (made by ``chronotope dataset``) instead of
    querying the oracle online; the env id and kwargs are the dataset's. ``steps`` counts stored transitions."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form values recorded with the run."""

    def run_name(self) -> str:
        return self.name or f"{self.env.split('/')[-1]}-{self.agent}-{self.algo}-s{self.seed}"

    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.run_name()

    def env_kwargs_dict(self) -> dict[str, Any]:
        return _json_object("env_kwargs", self.env_kwargs)

    def memory_cfg_dict(self) -> dict[str, Any]:
        return _json_object("memory_cfg", self.memory_cfg)

    def memory_key_tuple(self) -> tuple[str, ...]:
        """``memory_keys`` split at the commas (empty: every key feeds the memory)."""
        return tuple(k.strip() for k in self.memory_keys.split(",") if k.strip()) if self.memory_keys else ()

    def entity_key_tuple(self) -> tuple[str, ...]:
        """``entity_keys`` split at the commas (empty: none)."""
        return tuple(k.strip() for k in self.entity_keys.split(",") if k.strip()) if self.entity_keys else ()

    def row_glimpse_spec(self) -> tuple[int, int, float] | None:
        """``row_glimpse`` parsed (:func:`parse_glimpse`), or None."""
        return None if self.row_glimpse is None else parse_glimpse(self.row_glimpse)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        d["resume"] = None if self.resume is None else str(self.resume)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["out_dir"] = Path(d["out_dir"])
        d["resume"] = None if d.get("resume") is None else Path(d["resume"])
        return cls(**d)

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was asked for but torch sees no CUDA device")
        return self.device

    def validate(self) -> None:
        if not self.aux_coef >= 0:
            raise ValueError(f"aux_coef must be >= 0, got {self.aux_coef!r}")
        if self.readout_key is not None and not self.aux_coef > 0:
            raise ValueError(
                f"readout_key {self.readout_key!r} needs the auxiliary loss (aux_coef > 0, got {self.aux_coef!r}): "
                "it is what teaches the readout's weights"
            )
        if self.readout_match is not None and self.readout_key is None:
            raise ValueError(
                f"readout_match {self.readout_match!r} matches the rows of a readout: it needs readout_key"
            )
        if self.readout_query is not None and self.readout_key is None:
            raise ValueError(
                f"readout_query {self.readout_query!r} addresses the rows of a readout: it needs readout_key"
            )
        if self.row_vision and self.readout_key is None:
            raise ValueError("row_vision lets the readout's rows attend over the camera image: it needs readout_key")
        if self.row_glimpse is not None:
            if not self.row_vision:
                raise ValueError(f"row_glimpse {self.row_glimpse!r} sets how row_vision looks: it needs row_vision")
            self.row_glimpse_spec()
        if self.memory_grad == "aux" and not self.aux_coef > 0:
            raise ValueError(
                f"memory_grad='aux' trains the memory by the auxiliary loss alone: it needs aux_coef > 0, got "
                f"{self.aux_coef!r}"
            )
        if self.aux_lr is not None:
            if self.memory_grad != "aux":
                raise ValueError(
                    f"aux_lr {self.aux_lr!r} sets the learning rate of what the auxiliary loss alone trains: it needs "
                    f"memory_grad='aux', got {self.memory_grad!r}"
                )
            if not self.aux_lr > 0:
                raise ValueError(f"aux_lr must be > 0, got {self.aux_lr!r}")
        if not self.lr > 0:  # NaN too: torch's optimiser would fail later, or train on nothing
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not self.checkpoint_minutes > 0:
            raise ValueError(f"checkpoint_minutes must be > 0, got {self.checkpoint_minutes!r}")
        counts = ("steps", "num_envs", "rollout_len", "bptt_len", "epochs", "minibatches", "hidden", "checkpoint_every")
        for k in counts:
            if getattr(self, k) <= 0:
                raise ValueError(f"{k} must be positive, got {getattr(self, k)!r}")
        if self.obs_norm and self.algo != "ppo":
            raise ValueError(
                f"obs_norm updates its statistics from our PPO's rollouts: it needs --algo ppo, got {self.algo!r}"
            )
        if self.dataset is not None and self.algo != "bc":
            raise ValueError(
                f"--dataset trains with --algo bc only, got {self.algo!r} (DAgger needs the oracle online to label "
                "the learner's states; PPO needs the env's rewards)"
            )
        if self.dataset is not None and self.wrappers:
            raise ValueError(
                f"--dataset holds the env's own observations: map wrappers ({self.wrappers!r}) do not apply"
            )
        if self.bptt_overlap is not None and not 0 <= self.bptt_overlap <= self.rollout_len:
            raise ValueError(f"bptt_overlap must be in 0..rollout_len ({self.rollout_len}), got {self.bptt_overlap!r}")
        if self.rollout_len % self.bptt_len:
            raise ValueError(f"rollout_len {self.rollout_len} must be a multiple of bptt_len {self.bptt_len}")
        self.env_kwargs_dict()
        self.memory_cfg_dict()
        if self.wrappers:
            from chronotope.maps.wrappers import parse_wrappers

            parse_wrappers(self.wrappers)


def parse_glimpse(spec: str | tuple, columns: int | None = None) -> tuple[int, int, float]:
    """``row_glimpse`` ("X,Y,HFOV" or a tuple of the three) as (x column, y column, hfov degrees), checked: two
    distinct row columns >= 0 (and < ``columns`` when given), a field of view in (0, 180) degrees; else a ValueError
    naming the value. The one check of the config and of :class:`~chronotope.agents.encoders.RowVisionEncoder`."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    try:
        xi, yi, hfov = int(parts[0]), int(parts[1]), float(parts[2])
        ok = len(parts) == 3 and min(xi, yi) >= 0 and xi != yi and 0 < hfov < 180
        ok = ok and (columns is None or max(xi, yi) < columns)
    except (ValueError, IndexError, TypeError):
        ok = False
    if not ok:
        within = "" if columns is None else f" of the {columns}"
        raise ValueError(
            f"row_glimpse must be 'X,Y,HFOV' (two distinct row columns >= 0{within}, a field of view in (0, 180) "
            f"degrees), got {spec!r}"
        )
    return xi, yi, hfov


def _json_object(name: str, text: str) -> dict[str, Any]:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{name} must be a JSON object, got {text!r}: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{name} must be a JSON object, got {text!r}")
    return d
