"""Prediction API (Django REST framework): token or session auth, staff or project members."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes, throttle_classes
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle

from annotator.api.access import NO_AUTH, api_project, error
from annotator.api.serializers.predict import (
    PredictRequestSerializer,
    PredictResponseSerializer,
)
from annotator.ml import serving


class NoActiveModel(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "no_active_model"


class ModelUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "model_unavailable"


class PredictThrottle(UserRateThrottle):
    """Requests per user: REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["predict"] (ANNOTATOR_API_RATE)."""

    scope = "predict"



@extend_schema(
    operation_id="project_predict",
    summary="Predict the sentiment of a batch of texts with the project's active model",
    request=PredictRequestSerializer,
    responses={
        200: PredictResponseSerializer,
        400: OpenApiResponse(description="invalid input; the body names each problem"),
        401: NO_AUTH,
        403: error("neither staff nor a member of the project"),
        404: error("no such project"),
        409: error("the project has no active model version yet"),
        429: error("too many requests from this user; the Retry-After header says when to retry"),
        503: error("the active model version cannot be loaded"),
    },
    examples=[OpenApiExample("two reviews", request_only=True,
                             value={"texts": ["Love the fit!", "Fell apart after a week."]}),
              OpenApiExample("with the words that pushed each prediction", request_only=True,
                             value={"texts": ["质量很好，但是物流太慢了"], "explain": True})],
)
@api_view(["POST"])
@parser_classes([JSONParser])
@throttle_classes([PredictThrottle])
def predict(request: Request, project_id: int) -> Response:
    project = api_project(request.user, project_id)
    body = PredictRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        result = serving.predict(project_id=project.id, texts=body.validated_data["texts"],
                                 explain=body.validated_data["explain"])
    except serving.NoActiveModel:
        raise NoActiveModel(
            f"project {project.id} has no active model yet: train one (or activate a version) "
            "in the model registry first"
        ) from None
    except serving.ModelUnavailable as exc:  # the cause is in the log; paths are no answer
        raise ModelUnavailable(
            f"the active model version (version {exc.version}) cannot be loaded; "
            "an admin finds the error in the server log"
        ) from None
    return Response(result)
