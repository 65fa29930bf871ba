"""(being written)"""

from flask import Blueprint

bp = Blueprint("health_api", __name__)
