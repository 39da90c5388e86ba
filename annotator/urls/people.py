from django.urls import path

from annotator.views import people

urlpatterns = [
    path("projects/<int:project_id>/people/", people.people_page, name="people"),
    path("projects/<int:project_id>/people/add", people.member_add, name="member_add"),
    path("projects/<int:project_id>/people/invite", people.member_invite, name="member_invite"),
    path("projects/<int:project_id>/people/<int:user_id>/role", people.member_role,
         name="member_role"),
    path("projects/<int:project_id>/people/<int:user_id>/remove", people.member_remove,
         name="member_remove"),
    path("projects/<int:project_id>/people/<int:user_id>/invitation", people.member_invitation,
         name="member_invitation"),
    path("invite/", people.invitation_accept, name="invitation_accept"),
    path("invite/<uidb64>/<token>/", people.invitation_link_moved, name="invitation_link_moved"),
]
