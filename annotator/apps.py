from django.apps import AppConfig


class AnnotatorConfig(AppConfig):
    name = "annotator"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # a model registered on another machine is copied here before trainer/ looks for it
        import trainer.models
        from annotator.services.encoders import encoder_fetch

        trainer.models.fetch_registered = encoder_fetch
